"""The prediction log's tables (design.md section 2): what the services store and match.

- ``predictions``: one row per prediction served (written by :mod:`vigie.io.prediction_log`).
- ``forecast_points``: the values of a prediction that observed truth can later be compared with
  (a target, a horizon, the time it is about); ``observed`` and ``abs_error`` are filled by
  :mod:`vigie.io.feedback` when the truth arrives.
- ``observations``: every observed value received, matched or not.

The schema is changed only by the migrations of :mod:`vigie.io.prediction_migrations`: change a
model here, then write its revision (``vigie db revision solar-flare -m ... --autogenerate``).

Times are stored as naive UTC (:func:`utc_naive`): the same comparisons on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utc_naive(ts: datetime) -> datetime:
    """Stored times are naive UTC: identical comparisons on SQLite and PostgreSQL."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


class PredictionRow(Base):
    __tablename__ = "predictions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(36), unique=True)
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    request_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(80))
    level: Mapped[str] = mapped_column(String(16))
    measurement: Mapped[dict[str, Any]] = mapped_column(JSON)
    prediction: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_predictions_asset_time", "service", "asset_id", "timestamp"),)


class ForecastPointRow(Base):
    __tablename__ = "forecast_points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.prediction_id"))
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    horizon: Mapped[str] = mapped_column(String(16))
    target_time: Mapped[datetime] = mapped_column(DateTime)
    predicted: Mapped[float] = mapped_column(Float)
    observed: Mapped[float | None] = mapped_column(Float, nullable=True)
    abs_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (
        Index("ix_points_match", "service", "asset_id", "target", "target_time"),
        # The live MAE of a target and horizon over every asset: the latest observed points.
        Index(
            "ix_points_observed", "service", "target", "horizon", "target_time",
            sqlite_where=text("abs_error IS NOT NULL"),
            postgresql_where=text("abs_error IS NOT NULL"),
        ),
    )  # fmt: skip


class ObservationRow(Base):
    __tablename__ = "observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    value: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    subject: Mapped[str] = mapped_column(String(128))
    matched: Mapped[int] = mapped_column(Integer)
