"""Upgrade one database to its latest revision with Alembic, safely from several processes.

:func:`upgrade` is what every piece runs once before its workers fork (``vigie serve``'s
preparation) and what ``vigie db upgrade`` runs:

1. a lock-free read of the version table: at head already (every start but the first after a
   release), nothing else happens;
2. otherwise, under the lock of :mod:`vigie.io.db.lock` and in one transaction (PostgreSQL's and
   SQLite's DDL are both transactional here: a failed migration leaves nothing behind), the
   version is read again (another process may have upgraded meanwhile);
3. a database without a version row that holds the tables code older than the migrations made
   with ``create_all`` (:attr:`Migrations.legacy_tables`, checked table by table, column by
   column) is stamped at the baseline revision, which is that schema: its rows are kept;
4. ``alembic.command.upgrade`` to head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    column,
    create_engine,
    event,
    inspect,
    make_url,
    select,
    table,
)
from sqlalchemy.pool import NullPool

from vigie.io.db.engine import SQLITE_TIMEOUT_S, sqlite_file
from vigie.io.db.lock import advisory_lock, file_lock, lock_file_of
from vigie.io.db.migrations import Migrations

log = logging.getLogger(__name__)


class SchemaMismatch(RuntimeError):
    """The database holds tables of these migrations but no version row, and they are not the
    schema the baseline stands for: neither empty nor made by the older code. Nothing changed."""


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade` found and left: revisions before and after (None: no version row),
    and whether tables made before the migrations were stamped at the baseline first."""

    before: str | None
    after: str | None
    stamped: bool = False

    @property
    def changed(self) -> bool:
        return self.stamped or self.before != self.after


def _check_url(url: str | URL) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and sqlite_file(parsed) is None:
        # Each engine on "sqlite://" is a new empty database: migrating one would prove nothing.
        raise ValueError("an in-memory SQLite database cannot be migrated: use a file")


@contextmanager
def one_off_engine(url: str | URL, *, write: bool) -> Iterator[Engine]:
    """A short-lived engine (no pool: one connection, closed at once).

    ``write`` on SQLite: pysqlite opens no transaction around DDL by itself; SQLAlchemy's
    documented recipe (driver autocommit off, our own BEGIN) makes the migration one
    transaction, begun IMMEDIATE so it holds the write lock from its first read of the version
    table (a deferred one could be refused the upgrade to a writer in WAL mode)."""
    path = sqlite_file(url)
    if path is None:
        engine = create_engine(url, poolclass=NullPool)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_TIMEOUT_S})
        if write:

            @event.listens_for(engine, "connect")
            def _driver_autocommit(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin_immediate(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _migrating(url: str | URL, migrations: Migrations) -> Iterator[Connection]:
    """A connection in a transaction, holding the migration lock of its database."""
    _check_url(url)
    with ExitStack() as stack:
        path = sqlite_file(url)
        if path is not None:
            stack.enter_context(file_lock(lock_file_of(path)))
        engine = stack.enter_context(one_off_engine(url, write=True))
        conn = stack.enter_context(engine.begin())
        if conn.dialect.name == "postgresql":
            advisory_lock(conn, migrations.pg_lock_key)
        yield conn


def _revision(conn: Connection, migrations: Migrations) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table": migrations.version_table})
    return ctx.get_current_revision()


def _recorded(conn: Connection, migrations: Migrations) -> str | None:
    """The version row, read without a MigrationContext: every worker of every service reads
    it at start, and a context logs two lines each time it is made."""
    if not inspect(conn).has_table(migrations.version_table):
        return None
    version = table(migrations.version_table, column("version_num"))
    found = conn.execute(select(version.c.version_num)).scalars().all()
    if len(found) > 1:  # branches: let Alembic say what it makes of them
        return _revision(conn, migrations)
    return found[0] if found else None


def current_revision(url: str | URL, migrations: Migrations) -> str | None:
    """The revision the database at ``url`` is at (None: no version row, or no database)."""
    _check_url(url)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return None  # rather than creating an empty file by asking
    with one_off_engine(url, write=False) as engine, engine.connect() as conn:
        return _recorded(conn, migrations)


def _adopt_legacy(conn: Connection, migrations: Migrations) -> bool:
    """Stamp the baseline on a database made by the code before migrations; False when the
    database holds none of its tables (a new one: the baseline will create them)."""
    legacy = migrations.legacy_tables
    insp = inspect(conn)
    found = {name for name in legacy if insp.has_table(name)}
    if not found:
        return False
    problems = [f"no table {name}" for name in sorted(set(legacy) - found)]
    for name in sorted(found):
        missing = legacy[name] - {c["name"] for c in insp.get_columns(name)}
        if missing:
            problems.append(f"{name} lacks {', '.join(sorted(missing))}")
    if problems:
        raise SchemaMismatch(
            f"{migrations.name}: the database holds {', '.join(sorted(found))} but no "
            f"{migrations.version_table} row, and not the schema of revision "
            f"{migrations.baseline} ({'; '.join(problems)}); nothing was changed"
        )
    command.stamp(migrations.config(conn), migrations.baseline)
    log.info("%s: tables made before migrations found, stamped at %s",
             migrations.name, migrations.baseline)  # fmt: skip
    return True


def upgrade(url: str | URL, migrations: Migrations, revision: str = "head") -> UpgradeResult:
    """Upgrade the database at ``url`` to ``revision`` (default: head); see the module's doc.

    Raises :class:`SchemaMismatch` for tables that neither the migrations nor the older code
    made, and SQLAlchemy's errors when the database cannot be reached."""
    _check_url(url)
    if revision in ("head", migrations.head):
        before = current_revision(url, migrations)
        if before == migrations.head:
            return UpgradeResult(before, before)
    with _migrating(url, migrations) as conn:
        before = _revision(conn, migrations)
        stamped = before is None and _adopt_legacy(conn, migrations)
        command.upgrade(migrations.config(conn), revision)
        after = _revision(conn, migrations)
    if after != before:
        log.info("%s: upgraded from %s to %s", migrations.name, before or "nothing", after)
    return UpgradeResult(before, after, stamped)


def downgrade(url: str | URL, migrations: Migrations, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"``: drop everything)."""
    with _migrating(url, migrations) as conn:
        command.downgrade(migrations.config(conn), revision)
