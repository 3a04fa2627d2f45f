"""Alembic environment of the prediction log (see :mod:`vigie.io.db.env`)."""

from vigie.io.db.env import run_env
from vigie.io.prediction_migrations import MIGRATIONS
from vigie.io.prediction_tables import Base

run_env(MIGRATIONS, Base.metadata)
