"""Prediction records as the serve layer hands them to the prediction log: what the tests of
the log and of the feedback matched to it write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from vigie.io.prediction_log import ForecastPoint, PredictionRecord

SERVICE = "svc"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def record(
    asset: str = "T1",
    at: datetime = T0,
    points: list[ForecastPoint] | None = None,
    *,
    level: str = "NORMAL",
) -> PredictionRecord:
    """One prediction of ``asset`` at ``at`` with its forecast ``points`` (none by default)."""
    return PredictionRecord(
        prediction_id=str(uuid.uuid4()),
        asset_id=asset,
        timestamp=at,
        request_id="req-1",
        model_version="2024-01-01T00-00-00Z-abcdef",
        level=level,
        measurement={"load": 0.8},
        prediction={"temp_1h": 71.5, "asset": asset},
        points=points or [],
    )
