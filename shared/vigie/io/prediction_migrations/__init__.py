"""Alembic migrations of the prediction log (:mod:`vigie.io.prediction_tables`).

One schema for every prediction service (rows carry their ``service``), so one version table,
``alembic_version_predictions``, whether each service has its own SQLite file (the default) or
they all share a PostgreSQL database. Revision ``0001`` is the schema ``create_all`` made before
there were migrations; such a database is stamped there when first upgraded (its rows kept).
Run them with :func:`vigie.io.prediction_log.ensure_schema` or ``vigie db upgrade``.
"""

from __future__ import annotations

from pathlib import Path

from vigie.io.db.migrations import Migrations

# What create_all made before there were migrations (revision 0001 makes exactly that).
LEGACY_TABLES = {
    "predictions": frozenset({
        "seq", "prediction_id", "service", "asset_id", "timestamp", "request_id",
        "model_version", "level", "measurement", "prediction", "created_at",
    }),
    "forecast_points": frozenset({
        "id", "prediction_id", "service", "asset_id", "target", "horizon", "target_time",
        "predicted", "observed", "abs_error", "observed_at",
    }),
    "observations": frozenset({
        "id", "service", "asset_id", "target", "timestamp", "value", "received_at", "subject",
        "matched",
    }),
}  # fmt: skip

MIGRATIONS = Migrations(
    name="prediction log",
    script_location=Path(__file__).resolve().parent,
    version_table="alembic_version_predictions",
    baseline="0001",
    legacy_tables=LEGACY_TABLES,
    # The key ensure_schema's create_all took before migrations: an older process starting next
    # to a newer one (a rolling update) takes turns with it instead of racing.
    lock_key=0x76696769655F6C67,  # "vigie_lg"
)
