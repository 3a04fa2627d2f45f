"""Alembic migrations of the alerting database (:mod:`..models`).

Alembic's default version table, ``alembic_version``, as deployed databases have it: alerting
had migrations from its first revision, so there is nothing older to adopt (no
``legacy_tables``). Run them with :func:`vigie_services.alerting.db.migrate` or
``vigie db upgrade alerting``.
"""

from __future__ import annotations

from pathlib import Path

from vigie.io.db.migrations import Migrations
from vigie_services.alerting.settings import AlertingSettings


def _database_url(piece: str) -> str:
    return AlertingSettings().database_url_for(piece)


MIGRATIONS = Migrations(
    name="alerting",
    script_location=Path(__file__).resolve().parent,
    version_table="alembic_version",
    baseline="0001",
    # The key alerting's migrate took before the shared runner: old and new processes take turns.
    lock_key=0x7669676965616C72,  # "vigiealr"
    url_for=_database_url,
)
