"""index observed forecast points for the live MAE

``vigie_live_mae`` of a target and horizon averages the most recent observed forecasts of every
asset of the service: this partial index (only the points with an observed value) finds them
without scanning the service's points. Built in the migration's transaction (not CONCURRENTLY):
it runs before the workers start, and writes wait the few seconds a large table takes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 02:30:25.233084
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_points_observed",
        "forecast_points",
        ["service", "target", "horizon", "target_time"],
        sqlite_where=sa.text("abs_error IS NOT NULL"),
        postgresql_where=sa.text("abs_error IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_points_observed", table_name="forecast_points")
