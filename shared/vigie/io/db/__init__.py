"""The databases of the fleet: engines, and one migration path for all of them (Alembic).

- :func:`make_engine` (:mod:`.engine`): how a piece opens its database.
- :class:`Migrations` (:mod:`.migrations`): one database's Alembic script directory, declared
  by the package that owns the tables (``vigie.io.prediction_migrations``,
  ``vigie_services.auth.migrations``, ``vigie_services.alerting.migrations``).
- :func:`upgrade` (:mod:`.runner`): to head, under a lock, adopting databases created before
  migrations; :func:`current_revision`, :func:`downgrade`.
- :func:`new_revision` (:mod:`.revision`): write the next revision after a model change.

From the command line: ``vigie db upgrade [PIECE ...]``, ``vigie db current PIECE``,
``vigie db revision PIECE -m MESSAGE --autogenerate``.
"""

from vigie.io.db.engine import make_engine
from vigie.io.db.migrations import Migrations
from vigie.io.db.runner import (
    SchemaMismatch,
    UpgradeResult,
    current_revision,
    downgrade,
    upgrade,
)

__all__ = [
    "Migrations",
    "SchemaMismatch",
    "UpgradeResult",
    "current_revision",
    "downgrade",
    "make_engine",
    "upgrade",
]
