"""Alembic environment of auth's client registry (see :mod:`vigie.io.db.env`)."""

from vigie.io.db.env import run_env
from vigie_services.auth.clients import metadata
from vigie_services.auth.migrations import MIGRATIONS

run_env(MIGRATIONS, metadata)
