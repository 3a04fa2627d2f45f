"""The alerting database: engine and Alembic migrations, with no ``alembic.ini`` anywhere.

The schema is the models of :mod:`vigie_services.alerting.models`, created and changed only by
the migrations in ``migrations/versions/`` beside this file (shipped inside the package), on
SQLite (the embedded default) and PostgreSQL alike::

    from vigie_services.alerting.db import make_engine, migrate

    migrate(url)               # upgrade to head; a no-op when already there
    engine = make_engine(url)

For developers, the same from the command line (``--url``: a SQLAlchemy URL)::

    python -m vigie_services.alerting.db upgrade --url sqlite:///var/alerting.db [REV]
    python -m vigie_services.alerting.db downgrade --url ... REV      # e.g. base
    python -m vigie_services.alerting.db current --url ...
    python -m vigie_services.alerting.db history

New revision after changing ``models.py`` (autogenerate compares the models with a throwaway
SQLite database migrated to head, or with ``--url`` if given; the next number is picked when the
revision ids are numbers, as ``0001``)::

    python -m vigie_services.alerting.db revision --autogenerate -m "add subscriber phone"

then read the new file in ``migrations/versions/`` (autogenerate misses renames and some type
changes; ruff, when installed, has already fixed and formatted it) and run
``tests/services/alerting/test_migrations.py``, which checks on SQLite and PostgreSQL that the
migrations produce exactly the models' schema. Revisions are rendered in batch mode
(``op.batch_alter_table``) so that they work on SQLite too.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from vigie.io import prediction_log as storage

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Any constant will do: serialises concurrent `migrate` calls on one PostgreSQL database.
_PG_LOCK_KEY = 0x76696769_65616C72  # "vigiealr"


def make_engine(url: str) -> Engine:
    """The engine for the alerting database (same settings as the prediction log's)."""
    return storage.make_engine(url)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` for these migrations, working on ``connection`` (or ``url``)."""
    cfg = Config()
    # ConfigParser interpolates '%': double it in whatever goes into the options.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: head), in one transaction."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _lock(conn)
            command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"``: drop everything)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _lock(conn)
            command.downgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: not migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _next_rev_id() -> str | None:
    """``0002`` after ``0001``; None (Alembic's random id) when the head is not a number."""
    head = head_revision()
    if head is None:
        return "0001"
    return f"{int(head) + 1:04d}" if head.isdigit() else None


def _with_ruff(cfg: Config) -> Config:
    """Have Alembic run ruff (fix, then format) on the file it writes, when ruff is installed."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff:
        cfg.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
        for name, options in [
            ("ruff_fix", "check --fix --exit-zero --quiet REVISION_SCRIPT_FILENAME"),
            ("ruff_format", "format --quiet REVISION_SCRIPT_FILENAME"),
        ]:
            cfg.set_section_option("post_write_hooks", f"{name}.type", "exec")
            cfg.set_section_option("post_write_hooks", f"{name}.executable", ruff)
            cfg.set_section_option("post_write_hooks", f"{name}.options", options)
    return cfg


def new_revision(
    message: str, *, autogenerate: bool, url: str | None = None, rev_id: str | None = None
) -> None:
    """Write a new revision file into ``migrations/versions/`` (ruff-formatted if available)."""
    rev_id = rev_id or _next_rev_id()
    if not autogenerate:
        command.revision(_with_ruff(alembic_config()), message=message, rev_id=rev_id)
        return
    with tempfile.TemporaryDirectory(prefix="vigie-alembic-") as tmp:
        target = url or f"sqlite:///{Path(tmp) / 'head.db'}"
        migrate(target)
        engine = make_engine(target)
        try:
            with engine.begin() as conn:
                command.revision(
                    _with_ruff(alembic_config(conn)),
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                )
        finally:
            engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vigie_services.alerting.db", description="Alerting database migrations"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="upgrade a database (default: to head)")
    up.add_argument("--url", required=True)
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="downgrade a database to REVISION (base: empty)")
    down.add_argument("--url", required=True)
    down.add_argument("revision")
    cur = sub.add_parser("current", help="print the revision a database is at")
    cur.add_argument("--url", required=True)
    sub.add_parser("history", help="list the revisions")
    rev = sub.add_parser("revision", help="write a new revision file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff the models against head")
    rev.add_argument("--url", help="database at head to diff against (default: a temp SQLite)")
    rev.add_argument("--rev-id", help="revision id (default: the next number)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "upgrade":
        migrate(args.url, args.revision)
    elif args.cmd == "downgrade":
        downgrade(args.url, args.revision)
    elif args.cmd == "current":
        print(current_revision(args.url) or "(none)")
    elif args.cmd == "history":
        command.history(alembic_config())
    else:
        new_revision(args.message, autogenerate=args.autogenerate, url=args.url, rev_id=args.rev_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
