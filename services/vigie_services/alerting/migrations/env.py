"""Alembic environment of the alerting database (see :mod:`vigie.io.db.env`)."""

from vigie.io.db.env import run_env
from vigie_services.alerting.migrations import MIGRATIONS
from vigie_services.alerting.models import Base

run_env(MIGRATIONS, Base.metadata)
