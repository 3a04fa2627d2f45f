"""Alembic migrations of auth's client registry (``auth_clients``, :mod:`..clients`).

Version table ``alembic_version_auth`` (the database may be shared with other pieces). Revision
``0001`` is the table ``create_all`` made before there were migrations; such a database is
stamped there when first upgraded, its clients kept. Run them with
:meth:`~vigie_services.auth.clients.ClientStore.create_schema` or ``vigie db upgrade auth``.
"""

from __future__ import annotations

from pathlib import Path

from vigie.io.db.migrations import Migrations

MIGRATIONS = Migrations(
    name="auth clients",
    script_location=Path(__file__).resolve().parent,
    version_table="alembic_version_auth",
    baseline="0001",
    legacy_tables={
        "auth_clients": frozenset({"client_id", "secret_hash", "scopes", "created_at", "disabled"}),
    },
)
