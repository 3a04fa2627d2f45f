"""Scoring one series with an :class:`~.model.EnergyModel`: forecasts, anomaly components,
the combined score, levels and kinds (the rules are in :mod:`.model`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly.features import (
    _profile_features,
    forecast_features,
    stuck_flags,
)
from vigie_services.energy_anomaly.model import (
    HISTORY_DAYS,
    MISSING_WEIGHT,
    SHIFT_GAIN,
    SHIFT_WEIGHT,
    STUCK_WEIGHT,
    EnergyModel,
    FloatArray,
    SeriesInput,
    prepare,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Scores:
    """Per scored day of one series (arrays of equal length)."""

    dates: pd.DatetimeIndex | npt.NDArray[np.datetime64]  # as SeriesInput.dates
    forecast: FloatArray
    actual: FloatArray
    residual_z: FloatArray
    profile_z: FloatArray
    n_missing: npt.NDArray[np.int64]
    score: FloatArray
    shift: npt.NDArray[np.int64]
    shift_gain: FloatArray
    stuck: npt.NDArray[np.bool_]
    shifted: npt.NDArray[np.bool_]
    levels: list[str]
    kinds: list[list[str]]
    offset: int = HISTORY_DAYS  # index in the input of the first scored day

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "forecast": self.forecast,
                "actual": self.actual,
                "residual_z": self.residual_z,
                "profile_z": self.profile_z,
                "n_missing": self.n_missing,
                "stuck": self.stuck,
                "shifted": self.shifted,
                "score": self.score,
                "level": self.levels,
                "kinds": [",".join(k) for k in self.kinds],
            },
            index=self.dates,
        )


def predict_forecast(forecaster: Any, features: FloatArray, scale: FloatArray) -> FloatArray:
    if len(features) == 0:
        return np.empty(0)
    ratio = np.asarray(forecaster.predict(features), dtype=np.float64)
    return np.maximum(ratio, 0.0) * scale


def profile_z(model: EnergyModel, features: FloatArray) -> FloatArray:
    if len(features) == 0:
        return np.empty(0)
    raw = -model.isolation_forest.score_samples(features)
    return np.asarray((raw - model.profile_center) / model.profile_scale, dtype=np.float64)


def level_of(score: float, alerte: float, critique: float, data_quality: bool = False) -> str:
    """The level rule: CRITIQUE at or above ``critique``, ALERTE at or above ``alerte`` (or for a
    data-quality problem: missing hours, stuck meter), else NORMAL."""
    if score >= critique:
        return "CRITIQUE"
    if score >= alerte or data_quality:
        return "ALERTE"
    return "NORMAL"


def score(
    model: EnergyModel, series_id: str, series: SeriesInput, forecaster: Any = None
) -> Scores:
    """Forecast and anomaly score of every day of ``series`` that has ``HISTORY_DAYS`` before it.

    ``forecaster`` overrides the model's (used in validation)."""
    stats = model.series[series_id]
    prep = prepare(series)
    feats, scale = forecast_features(series, prep, stats.mean_daily_mwh)
    est = forecaster or model.forecaster
    forecast = predict_forecast(est, feats, scale)
    h = HISTORY_DAYS
    actual = prep.totals[h:]
    res_z = (actual - forecast) / np.maximum(forecast, 1e-6) / stats.residual_scale
    # Second pass: a day whose total alone is anomalous (spike/drop) must not drag the forecast
    # of the following days: as history, it is replaced by its own forecast.
    jumps = np.abs(res_z) / model.residual_norm >= model.alerte
    if jumps.any():
        totals = prep.totals.copy()
        totals[h:][jumps] = forecast[jumps]
        feats, scale = forecast_features(series, replace(prep, totals=totals), stats.mean_daily_mwh)
        forecast = predict_forecast(est, feats, scale)
        res_z = (actual - forecast) / np.maximum(forecast, 1e-6) / stats.residual_scale
    pfeat, recent_shift = _profile_features(prep)
    prof_z = profile_z(model, pfeat)
    n_missing = prep.n_missing[h:]
    stuck = stuck_flags(series, prep)
    shifted = (pfeat[:, 2] >= SHIFT_GAIN) & ~stuck if len(actual) else np.zeros(0, dtype=bool)
    combined = (
        np.hypot(res_z / model.residual_norm, np.maximum(prof_z, 0.0) / model.profile_norm)
        + MISSING_WEIGHT * n_missing
        + STUCK_WEIGHT * stuck
        + SHIFT_WEIGHT * shifted
    )
    shift, gain = recent_shift, pfeat[:, 2]
    # level_of for every day at once; the kinds of the days above NORMAL
    quality = (n_missing > 0) | stuck | shifted
    critique = combined >= model.critique
    above = critique | (combined >= model.alerte) | quality
    levels = np.where(critique, "CRITIQUE", np.where(above, "ALERTE", "NORMAL")).tolist()
    kinds: list[list[str]] = [[] for _ in range(len(actual))]
    for i in np.flatnonzero(above).tolist():
        found = kinds[i]
        if n_missing[i] > 0:
            found.append(dt.MISSING)
        if stuck[i]:
            found.append(dt.STUCK)
        if shifted[i]:
            found.append(dt.SHIFTED)
        if abs(res_z[i]) / model.residual_norm >= model.alerte:
            found.append(dt.SPIKE if res_z[i] > 0 else dt.DROP)
        if not found:
            found.append(dt.UNUSUAL)
    return Scores(
        dates=series.dates[h:],
        forecast=forecast,
        actual=actual,
        residual_z=res_z,
        profile_z=prof_z,
        n_missing=n_missing,
        score=combined,
        shift=shift,
        shift_gain=gain,
        stuck=stuck,
        shifted=shifted,
        levels=levels,
        kinds=kinds,
    )


def score_frame(
    model: EnergyModel,
    frame: pd.DataFrame,
    forecaster: Any = None,
    on_unknown: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Score every series of a :func:`data.load_frame` frame; one row per scored day with
    ``series`` and, when the frame has them, ``is_anomaly`` / ``anomaly_kind``."""
    import pandas as pd

    parts = []
    for sid, part in dt.split_series(frame).items():
        if sid not in model.series:
            if on_unknown is not None:
                on_unknown(sid)
            continue
        s = score(model, sid, SeriesInput.from_frame(part), forecaster)
        out = s.frame()
        out["series"] = sid
        for extra in (dt.IS_ANOMALY, "anomaly_kind"):
            if extra in part.columns:
                out[extra] = part[extra].to_numpy()[s.offset :]
        parts.append(out)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts)
