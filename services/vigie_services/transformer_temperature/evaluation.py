"""Scores of a forecaster against persistence (``OT(t+h) = OT(t)``): the card's validation
metrics and ``vigie evaluate`` (design.md section 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigie_services.transformer_temperature.data import values_of
from vigie_services.transformer_temperature.features import (
    HISTORY_HOURS,
    HORIZONS,
    FloatArray,
    targets,
)
from vigie_services.transformer_temperature.forecasting import forecast, persistence

if TYPE_CHECKING:
    import pandas as pd


def _scored_pairs(model: object, values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(actual, model forecast, persistence) at the origins whose every horizon is known."""
    if len(values) < HISTORY_HOURS + max(HORIZONS):
        raise ValueError(
            f"need at least HISTORY_HOURS + {max(HORIZONS)} = {HISTORY_HOURS + max(HORIZONS)} "
            f"rows to score, got {len(values)}"
        )
    # One origin set for all horizons so the horizons are compared on the same cases.
    usable = len(values) - max(HORIZONS)
    base = persistence(values[:usable])
    actual = base + targets(values)[: len(base)]
    return actual, forecast(model, values[:usable]), base


def scores(model: object, values: FloatArray) -> dict[str, dict[str, float]]:
    """MAE, RMSE and R² of ``model`` and of persistence per horizon ``h<N>``, on every origin
    of ``values`` with a full window and all horizons known."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    actual, predicted, base = _scored_pairs(model, values)
    out: dict[str, dict[str, float]] = {}
    for j, h in enumerate(HORIZONS):
        y, p, b = actual[:, j], predicted[:, j], base[:, j]
        out[f"h{h}"] = {
            "mae": float(mean_absolute_error(y, p)),
            "rmse": float(root_mean_squared_error(y, p)),
            "r2": float(r2_score(y, p)),
            "persistence_mae": float(mean_absolute_error(y, b)),
            "persistence_rmse": float(root_mean_squared_error(y, b)),
            "persistence_r2": float(r2_score(y, b)),
        }
    return out


def evaluate(model: object, frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Score ``model`` on a frame from :func:`~.data.load_series` (e.g. a later, unseen period).

    Every origin with a full history window and all horizons known is used. R² is computed on
    the absolute OT forecasts. Returns ``{"h1": {"mae", "rmse", "r2", "persistence_mae"}, ...}``.
    """
    keep = ("mae", "rmse", "r2", "persistence_mae")
    return {
        h: {k: v for k, v in s.items() if k in keep}
        for h, s in scores(model, values_of(frame)).items()
    }
