"""The body of every ``env.py`` of our Alembic script directories.

Alembic executes a script directory's ``env.py`` for each command; ours is two lines::

    from vigie.io.db.env import run_env
    run_env(MIGRATIONS, Base.metadata)

The connection comes from the runner (:mod:`vigie.io.db.runner`), which has opened the
transaction and taken the lock: ``config.attributes["connection"]``. There is no URL mode and no
``alembic.ini``: running Alembic any other way would skip the lock and the version table name.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData

from vigie.io.db.migrations import Migrations


def run_env(migrations: Migrations, target_metadata: MetaData) -> None:
    """Run the migrations Alembic asked for on the runner's connection."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            f"{migrations.name}: run the migrations through vigie.io.db (upgrade, downgrade, "
            "new_revision, or `vigie db`), which hands Alembic a locked connection"
        )

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        # A database may be shared (one PostgreSQL URL for every piece): autogenerate must not
        # see the other pieces' tables as tables to drop. The flip side: a table dropped from
        # the models is not noticed either; write its drop_table by hand.
        return type_ != "table" or name in target_metadata.tables

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=migrations.version_table,
        compare_type=True,
        include_name=include_name,
        # The runner's transaction holds every statement, SQLite's too (see vigie.io.db.runner).
        transactional_ddl=True,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
