"""The locks that let several processes upgrade one database at the same moment.

Every piece upgrades its database when it starts (``vigie serve``'s preparation, before the
workers fork), and pieces start together: the services sharing one PostgreSQL database in
compose or Kubernetes, a replica next to the one it replaces. Under these locks the first one
upgrades and the others, waiting their turn, find the database at head and do nothing.

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``), taken first in the
  migration's transaction and released by its commit or rollback. PostgreSQL's DDL is
  transactional, so a waiting process sees the finished schema or none of it.
- SQLite: an exclusive ``flock`` on a file next to the database, held around the whole upgrade
  and released by the kernel if the process dies. SQLite's own write lock (``BEGIN IMMEDIATE``,
  which the runner takes too, for atomicity) would also exclude a second migrator, but only for
  the connection's busy timeout: a second process would fail with "database is locked" behind
  a migration that takes longer. The file lock waits as long as the migration takes.
  It is always taken before the database's write lock, so the two never wait on each other.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text


def lock_file_of(database: Path) -> Path:
    """The lock file of a SQLite database: ``var/auth.db`` -> ``var/auth.db.migrations.lock``."""
    return database.with_name(database.name + ".migrations.lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing; never truncated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def advisory_lock(conn: Connection, key: int) -> None:
    """Wait for PostgreSQL's advisory lock ``key``, held until ``conn``'s transaction ends."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
