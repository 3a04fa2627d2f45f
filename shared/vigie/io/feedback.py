"""Observed truth for earlier predictions, and the live skill it gives (design.md section 2).

``POST /v1/feedback`` hands observed values to :meth:`FeedbackStore.record_observations`: each
is stored (``observations``), matched to the forecast points about its target and time
(``forecast_points``, written by :mod:`vigie.io.prediction_log`), which get the observed value
and their absolute error, and the live skill is updated:

- on ``/metrics``, per service, target and horizon (never per asset: asset ids are client
  input, an unbounded label): ``vigie_feedback_observations_total``,
  ``vigie_feedback_abs_error_total`` and ``vigie_live_mae``, the MAE of the most recent
  observed forecasts of every asset;
- per asset, in the feedback response: :meth:`FeedbackStore.live_mae`, per horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from vigie.io.prediction_tables import ForecastPointRow, ObservationRow, PredictionRow, utc_naive
from vigie.obs.metrics import ServiceMetrics

#: How many of the most recent observed forecasts the live MAE averages.
MAE_WINDOW = 1000


@dataclass(frozen=True)
class Observation:
    """An observed value of ``target`` at ``timestamp``."""

    target: str
    timestamp: datetime
    value: float


@dataclass(frozen=True)
class MatchResult:
    """What became of one observation: how many forecast points it was matched to."""

    timestamp: datetime
    target: str
    matched: int
    value: float = 0.0
    # The stored prediction items this observation was matched to (what the service answered).
    predictions: tuple[dict[str, Any], ...] = ()


def _nothing() -> None:
    return None


class FeedbackStore:
    """Observations of one service, matched against its prediction log's forecast points.

    It shares the prediction log's engine (and its tables: the log creates them, and disposes
    the engine when it closes). ``flush_predictions`` is called before matching; give it
    :meth:`PredictionLog.flush <vigie.io.prediction_log.PredictionLog.flush>`, so that an
    observation is matched against every prediction made so far, not only the written ones.
    """

    def __init__(
        self,
        engine: Engine,
        service: str,
        metrics: ServiceMetrics,
        *,
        flush_predictions: Callable[[], None] = _nothing,
    ) -> None:
        self.engine = engine
        self.service = service
        self._metrics = metrics
        self._flush_predictions = flush_predictions

    def record_observations(
        self, asset_id: str, observations: list[Observation], subject: str
    ) -> list[MatchResult]:
        """Store observations of ``asset_id`` (sent by ``subject``), attach them to the forecasts
        about their time, update the metrics; one result per observation, in order."""
        self._flush_predictions()
        now = datetime.now(UTC).replace(tzinfo=None)
        results: list[MatchResult] = []
        touched: set[tuple[str, str]] = set()
        m = self._metrics
        with self.engine.begin() as conn:
            for obs in observations:
                ts = utc_naive(obs.timestamp)
                rows = conn.execute(
                    select(
                        ForecastPointRow.id,
                        ForecastPointRow.horizon,
                        ForecastPointRow.predicted,
                        PredictionRow.prediction,
                    )
                    .join(
                        PredictionRow,
                        PredictionRow.prediction_id == ForecastPointRow.prediction_id,
                    )
                    .where(
                        ForecastPointRow.service == self.service,
                        ForecastPointRow.asset_id == asset_id,
                        ForecastPointRow.target == obs.target,
                        ForecastPointRow.target_time == ts,
                    )
                ).all()
                for point_id, horizon, predicted, _prediction in rows:
                    err = abs(obs.value - predicted)
                    conn.execute(
                        update(ForecastPointRow)
                        .where(ForecastPointRow.id == point_id)
                        .values(observed=obs.value, abs_error=err, observed_at=now)
                    )
                    m.feedback_observations.labels(self.service, obs.target, horizon).inc()
                    m.feedback_abs_error.labels(self.service, obs.target, horizon).inc(err)
                    touched.add((obs.target, horizon))
                conn.execute(
                    insert(ObservationRow),
                    [
                        {
                            "service": self.service,
                            "asset_id": asset_id,
                            "target": obs.target,
                            "timestamp": ts,
                            "value": obs.value,
                            "received_at": now,
                            "subject": subject,
                            "matched": len(rows),
                        }
                    ],
                )
                results.append(
                    MatchResult(
                        obs.timestamp, obs.target, len(rows), obs.value,
                        tuple(r[3] for r in rows),
                    )
                )  # fmt: skip
            for target, horizon in touched:
                mae = self._recent_mae(conn, horizon, target=target)
                if mae is not None:
                    m.live_mae.labels(self.service, target, horizon).set(mae)
        return results

    def _recent_mae(
        self,
        conn: Connection,
        horizon: str,
        *,
        target: str | None = None,
        asset_id: str | None = None,
    ) -> float | None:
        """MAE over the ``MAE_WINDOW`` observed forecasts of ``horizon`` about the latest
        times, of one target or one asset."""
        q = select(ForecastPointRow.abs_error).where(
            ForecastPointRow.service == self.service,
            ForecastPointRow.horizon == horizon,
            ForecastPointRow.abs_error.is_not(None),
        )
        if target is not None:
            q = q.where(ForecastPointRow.target == target)
        if asset_id is not None:
            q = q.where(ForecastPointRow.asset_id == asset_id)
        recent = q.order_by(ForecastPointRow.target_time.desc()).limit(MAE_WINDOW).subquery()
        value = conn.execute(select(func.avg(recent.c.abs_error))).scalar()
        return None if value is None else float(value)

    def live_mae(self, asset_id: str) -> dict[str, float]:
        """MAE per horizon over the most recent observed forecasts of an asset."""
        with self.engine.connect() as conn:
            horizons = (
                conn.execute(
                    select(ForecastPointRow.horizon)
                    .where(
                        ForecastPointRow.service == self.service,
                        ForecastPointRow.asset_id == asset_id,
                        ForecastPointRow.abs_error.is_not(None),
                    )
                    .distinct()
                )
                .scalars()
                .all()
            )
            out = {}
            for h in horizons:
                mae = self._recent_mae(conn, h, asset_id=asset_id)
                if mae is not None:
                    out[h] = mae
            return out
