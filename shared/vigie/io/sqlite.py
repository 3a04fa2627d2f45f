"""SQLite connections of the services (prediction log, outbox): WAL, opened safely together."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def enable_wal(db: Any, busy_timeout_s: float) -> None:
    """Put ``db`` (a DB-API sqlite3 connection) in WAL mode: readers never block the writer and
    the workers of a service share the file.

    Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is locked"
    at once, without its busy handler, when the workers of a service that just forked (or
    several services sharing a file) all try it together: one of them then failed to boot.
    Retried within the busy timeout; once the file is in WAL, the pragma is free."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
