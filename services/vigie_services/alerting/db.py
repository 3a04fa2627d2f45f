"""The alerting database: its engine, and its migrations run by the shared runner.

The schema is the models of :mod:`vigie_services.alerting.models`, created and changed only by
the migrations in ``migrations/versions/`` beside this file (declared in
:mod:`vigie_services.alerting.migrations`, run by :mod:`vigie.io.db`), on SQLite (the embedded
default) and PostgreSQL alike::

    from vigie_services.alerting.db import make_engine, migrate

    migrate(url)               # upgrade to head under a lock; a no-op when already there
    engine = make_engine(url)

From the command line: ``vigie db upgrade alerting``, ``vigie db current alerting``, and after a
change to ``models.py``, ``vigie db revision alerting -m "add subscriber phone" --autogenerate``
(then read the new file and run ``tests/services/alerting/test_migrations.py``, which checks on
SQLite and PostgreSQL that the migrations give exactly the models' schema). The older
``python -m vigie_services.alerting.db upgrade|downgrade|current|history|revision`` still works.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from alembic import command
from sqlalchemy import Engine

from vigie.io import db
from vigie.io.db.revision import new_revision
from vigie_services.alerting.migrations import MIGRATIONS


def make_engine(url: str) -> Engine:
    """The engine for the alerting database (same settings as the prediction log's)."""
    return db.make_engine(url)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: head), in one transaction."""
    db.upgrade(url, MIGRATIONS, revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"``: drop everything)."""
    db.downgrade(url, MIGRATIONS, revision)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: not migrated)."""
    return db.current_revision(url, MIGRATIONS)


def head_revision() -> str | None:
    return MIGRATIONS.head


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
        command.history(MIGRATIONS.config())
    else:
        new_revision(
            MIGRATIONS, args.message, autogenerate=args.autogenerate, url=args.url,
            rev_id=args.rev_id,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
