"""A small local store, shared by the gunicorn workers of one service on one host.

It holds what must survive while Redis is unreachable:

* the **outbox** of level events not yet in Redis (:class:`LocalOutbox`, ``spool.outbox``), kept
  in emission order and drained by :class:`vigie.io.outbox_publisher.OutboxPublisher` of
  whichever worker claims it first: a drainer holds an exclusive ``flock`` on a lock file next
  to the database from :meth:`~LocalOutbox.take` to :meth:`~LocalOutbox.mark_sent` (or
  :meth:`~LocalOutbox.release`), so two workers never send the same entries nor overtake each
  other, and the kernel drops the claim of a worker that dies;
* **idempotency records** claimed while Redis was down.

A marker file next to the database says "the outbox is not empty", so the hot path checks it with
one ``stat`` instead of a query. The marker is created and removed only while holding the SQLite
write lock (``BEGIN IMMEDIATE``), with the rows that justify it, so it never lies to a request
that starts after a previous one has returned.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vigie.io.sqlite import enable_wal

if TYPE_CHECKING:
    from vigie.settings import VigieSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    record BLOB NOT NULL,
    expires_at REAL NOT NULL
);
"""


def spool_path(settings: VigieSettings, service: str) -> Path:
    """Where the workers of ``service`` keep their shared outbox."""
    return settings.var_dir / "spool" / f"{service}.sqlite"


class Spool:
    """The outbox and idempotency fallback of one service; safe across threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self.outbox = LocalOutbox(self)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, it is our lock.
        db = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            enable_wal(db, self._busy_timeout_s)
        except sqlite3.OperationalError:
            db.close()
            raise
        db.execute("PRAGMA synchronous=FULL")  # an event in the outbox must survive a crash
        return db

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    # -- idempotency fallback ---------------------------------------------------------------
    def idem_claim(self, key: str, record: bytes, ttl_s: float) -> bytes | None:
        """Store ``record`` under ``key`` unless a live one exists; return the existing one."""
        now = time.time()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM idempotency WHERE expires_at < ?", (now,))
            row = db.execute("SELECT record FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO idempotency (key, record, expires_at) VALUES (?, ?, ?)",
                    (key, record, now + ttl_s),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return None if row is None else bytes(row[0])

    def idem_get(self, key: str) -> bytes | None:
        row = self.db.execute(
            "SELECT record FROM idempotency WHERE key = ? AND expires_at >= ?", (key, time.time())
        ).fetchone()
        return None if row is None else bytes(row[0])

    def idem_put(self, key: str, record: bytes, ttl_s: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO idempotency (key, record, expires_at) VALUES (?, ?, ?)",
            (key, record, time.time() + ttl_s),
        )

    def idem_delete(self, key: str) -> None:
        self.db.execute("DELETE FROM idempotency WHERE key = ?", (key,))


class LocalOutbox:
    """The level events of one service waiting for Redis: the :class:`~vigie.io.
    outbox_publisher.Outbox` of a :class:`Spool`, oldest first (ids are the table's sequence)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self.marker = spool.path.with_name(spool.path.name + ".pending")
        self._lock_path = spool.path.with_name(spool.path.name + ".drain")
        self._claim: int | None = None  # the lock file's descriptor while entries are taken
        self._claim_mutex = threading.Lock()

    def pending(self) -> bool:
        return self.marker.exists()

    def append(self, payload: bytes) -> None:
        db = self._spool.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO outbox (payload, queued_at) VALUES (?, ?)", (payload, time.time())
            )
            self.marker.touch()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def depth(self) -> int:
        row = self._spool.db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def take(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` of the oldest entries, claimed for this drainer (see the module
        docstring); ``[]`` when the outbox is empty or another drainer holds the claim."""
        if not self._acquire():
            return []
        try:
            rows = self._spool.db.execute(
                "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        except BaseException:
            self.release()
            raise
        if not rows:
            self.release()
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Remove the entries sent (and the marker with the last of them); ends the claim."""
        db = self._spool.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE seq = ?", [(i,) for i in ids])
                if db.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None:
                    self.marker.unlink(missing_ok=True)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            self.release()

    def release(self) -> None:
        with self._claim_mutex:
            if self._claim is not None:
                os.close(self._claim)  # closing drops the flock
                self._claim = None

    def _acquire(self) -> bool:
        # A descriptor of its own per claim: flock excludes other open files, threads and
        # processes alike (a descriptor inherited through fork would share the lock instead).
        with self._claim_mutex:
            if self._claim is not None:
                return False  # this instance is draining already (another thread)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            self._claim = fd
            return True
