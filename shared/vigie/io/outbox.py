"""A small local store, shared by the gunicorn workers of one service on one host.

It holds what must survive while Redis is unreachable:

* the **outbox** of level events not yet in Redis, kept in emission order and drained by whichever
  worker takes the write lock first (SQLite ``BEGIN IMMEDIATE`` is the cross-process lock);
* **idempotency records** claimed while Redis was down.

A marker file next to the database says "the outbox is not empty", so the hot path checks it with
one ``stat`` instead of a query. The marker is created and removed only while holding the write
lock, so it never lies to a request that starts after a previous one has returned.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
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
        self.marker = path.with_name(path.name + ".pending")
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

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
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    # -- outbox -----------------------------------------------------------------------------
    def outbox_pending(self) -> bool:
        return self.marker.exists()

    def outbox_append(self, payload: bytes) -> None:
        db = self._db
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

    def outbox_depth(self) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def outbox_drain(self, publish: Callable[[Sequence[bytes]], None], *, batch: int = 500) -> int:
        """Publish queued events in order, oldest first; returns how many left the outbox.

        ``publish`` must raise if the batch did not reach its destination: the batch then stays
        queued, in order, for the next attempt. Runs under the write lock, so two workers never
        send the same entries.
        """
        db = self._db
        sent = 0
        while True:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (batch,)
                ).fetchall()
                if rows:
                    publish([bytes(r[1]) for r in rows])
                    db.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
                    sent += len(rows)
                more = len(rows) == batch
                if not more:
                    self.marker.unlink(missing_ok=True)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if not more:
                return sent

    # -- idempotency fallback ---------------------------------------------------------------
    def idem_claim(self, key: str, record: bytes, ttl_s: float) -> bytes | None:
        """Store ``record`` under ``key`` unless a live one exists; return the existing one."""
        now = time.time()
        db = self._db
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
        row = self._db.execute(
            "SELECT record FROM idempotency WHERE key = ? AND expires_at >= ?", (key, time.time())
        ).fetchone()
        return None if row is None else bytes(row[0])

    def idem_put(self, key: str, record: bytes, ttl_s: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency (key, record, expires_at) VALUES (?, ?, ?)",
            (key, record, time.time() + ttl_s),
        )

    def idem_delete(self, key: str) -> None:
        self._db.execute("DELETE FROM idempotency WHERE key = ?", (key,))
