"""Forecast and anomaly score of the ``energy-anomaly`` service.

Everything works on one series at a time: consecutive days, each with 24 hourly values (NaN =
missing), an optional daily total and the social-movement flag. A day is *scored* when the
``HISTORY_DAYS`` days before it are present; the first ``HISTORY_DAYS`` days only serve as history.

Preparing a day
---------------
Missing hours are filled by linear interpolation between the day's present hours (nearest value
at the ends); the daily total is the published one when given, else the sum of the (filled)
hours. The normalised profile of a day is its 24 filled hours divided by their sum.

Forecast
--------
Target: the day's total divided by ``scale`` = the mean total of the ``HISTORY_DAYS`` previous
days (so one global model serves series whose sizes differ by 1000x). Features:

* ``lag_k`` = total k days ago / scale, k = 1..7 (``lag_7`` = same weekday last week);
* ``level`` = scale / the series' mean daily total in training (how deep in the heating season
  the series is: this carries the weather, absent from the data);
* calendar: day of week (one-hot), French public holiday, bridge day, year-end break (24 Dec to
  2 Jan), holiday yesterday, holiday a week ago, day of year (two sine/cosine harmonics);
* ``movement_social``.

Anomaly score
-------------
Components, each on a standard-deviation-like scale:

* ``residual_z`` = relative residual ``(actual - forecast) / forecast`` divided by the series'
  robust residual scale (1.4826 x median absolute deviation of the relative residuals of the
  validation year, out of sample);
* ``profile_z``: an Isolation Forest (200 trees) on six features of the day's hourly profile
  against two references, the per-hour median of the normalised profiles of the
  ``HISTORY_DAYS`` previous days and the profile of the same weekday a week before (distances
  take the smaller of the two, so a normal Sunday is not unusual): L1 distance, largest hourly
  deviation, correlation gain of the best time shift (1..8 h) over no shift, log ratio of the
  profile's spread to the reference's, log of the mean absolute change from the previous day's
  hours (near 0 = a repeated day), and the largest hour-to-hour jump. Its anomaly score
  ``-score_samples`` is centred on the training median and divided by 1.4826 x MAD;
* data quality: ``MISSING_WEIGHT`` (4) per missing hour, ``STUCK_WEIGHT`` (8) for a stuck meter,
  ``SHIFT_WEIGHT`` (8) for a shifted profile (rules below).

``score = hypot(residual_z / residual_norm, max(profile_z, 0)) + 4 x missing hours
+ 8 x stuck + 8 x shifted``, where ``residual_norm`` (from training) = 99th percentile of
``|residual_z|`` / 99th percentile of ``max(profile_z, 0)`` on clean validation days: both
components then have the same 99th percentile, so neither drowns the other.

A day whose residual alone reaches ALERTE (a spike or drop of the total) would drag the
forecasts of the next days (it is in their lags): after a first pass, such days are replaced
*as history* by their forecast and the forecasts recomputed (the flagged day keeps its actual).

Level rule: ``score >= critique`` -> CRITIQUE, ``score >= alerte`` -> ALERTE, else NORMAL, where
``alerte`` / ``critique`` are the 99th / 99.9th percentiles (``ALERTE_QUANTILE`` /
``CRITIQUE_QUANTILE``) of the score over the validation-year days without missing hours, stuck
meter or shifted profile (out of sample). A day with missing hours, a stuck meter or a shifted
profile is at least ALERTE (data-quality problems always reach the operator). The real data
have such shifts: on 2022-05-01..04 and 2022-06-01..04 the profiles of all 12 GRTgaz series
move by 6 h (a change of gas-day convention in the published hours).

Kinds (for a day above NORMAL; several may apply):

* ``missing_hours``: at least one hour is null;
* ``stuck_meter``: flat profile (max - min < 2 % of the mean hour), or hours equal to the
  previous day's (mean absolute change < 0.1 % of the mean hour), or 6+ consecutive equal hours;
* ``shifted_profile``: the profile correlates better with a reference shifted by 1..8 h than with
  the unshifted one, by at least ``SHIFT_GAIN`` (0.3) for both references (not for a stuck
  day); injected 3-8 h shifts of the real 2022 profiles all have a gain above 0.32;
* ``spike`` / ``drop``: ``|residual_z| / residual_norm`` alone reaches ALERTE (sign decides);
* ``unusual_profile``: above NORMAL for none of these reasons.

Compiled inference
------------------
Both estimators are compiled to ONNX (:mod:`vigie.models.compiled`): the forecaster (part
``forecaster``, ``model.forecaster.onnx``) and the Isolation Forest's ``score_samples`` (part
``isolation_forest``, ``model.isolation_forest.onnx``, with vigie's own converter: skl2onnx's
makes a 5400-node graph slower than scikit-learn). Features, the second pass, the profile
normalisation, the data-quality rules and the score stay numpy. ONNX Runtime computes in
float32; a part is published only when its largest difference from the joblib estimator on the
validation days is within its tolerance: ``FORECAST_TOLERANCE`` = 1e-4 on the forecast ratio
(0.01 % of the forecast; it moves ``residual_z`` by at most 0.01 for the 1 % residual-scale
floor) and ``PROFILE_TOLERANCE`` = 1e-5 on ``score_samples`` (``profile_z`` divides it by
1.4826 x MAD, about 0.01-0.03: at most 1e-3 there). The card records both under ``compiled``.
Measured on the GRTgaz/Teréga training file: 7.3e-7 (forecast ratio, random forest, float32
input as its trees compare float32) and 4e-7 (``score_samples``) on the validation days; over
every scored day, forecasts within 7.6e-7 of their value, ``profile_z`` within 1.2e-5, scores
within 1.8e-5 and no level changed. A part without a compiled form is served by its joblib
estimator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie_services.energy_anomaly import data as dt

# scikit-learn and pandas are imported where training, evaluation and frames need them, never at
# import: a serving worker that loads the compiled serving artifact (vigie.models.store) imports
# this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    from vigie.models.compile import Part

FloatArray = npt.NDArray[np.float64]

HISTORY_DAYS = 7
MISSING_WEIGHT = 4.0
STUCK_WEIGHT = 8.0
SHIFT_GAIN = 0.3
SHIFT_WEIGHT = 8.0
MAX_SHIFT = 8
FLAT_RANGE = 0.02
REPEAT_CHANGE = 1e-3
STUCK_RUN = 6
ALERTE_QUANTILE = 99.0
CRITIQUE_QUANTILE = 99.9
FORECAST_TOLERANCE = 1e-4  # max |compiled - joblib| forecast ratio to publish the forecaster
PROFILE_TOLERANCE = 1e-5  # max |compiled - joblib| score_samples to publish the forest

_SHIFTS = [k for k in range(-MAX_SHIFT, MAX_SHIFT + 1) if k != 0]

CALENDAR_FEATURES = [
    *(f"dow_{d}" for d in range(7)),
    "holiday",
    "bridge",
    "year_end",
    "holiday_yesterday",
    "holiday_last_week",
    "doy_sin1",
    "doy_cos1",
    "doy_sin2",
    "doy_cos2",
    "movement_social",
]
FORECAST_FEATURES = [*(f"lag_{k}" for k in range(1, HISTORY_DAYS + 1)), "level", *CALENDAR_FEATURES]
PROFILE_FEATURES = [
    "profile_l1",
    "profile_max_dev",
    "shift_gain",
    "log_spread_ratio",
    "log_change_from_yesterday",
    "max_hourly_jump",
]


@dataclass
class SeriesInput:
    """One series, consecutive days oldest first (what a request or a CSV provides)."""

    dates: pd.DatetimeIndex | npt.NDArray[np.datetime64]  # days (serving: datetime64[D])
    hours: FloatArray  # (n, 24), NaN = missing
    daily: FloatArray  # (n,), NaN = not given
    movement: npt.NDArray[np.bool_]

    @classmethod
    def from_frame(cls, part: pd.DataFrame) -> SeriesInput:
        """From one series of :func:`data.split_series` (index = consecutive dates)."""
        import pandas as pd

        return cls(
            dates=pd.DatetimeIndex(part.index),
            hours=part[list(dt.HOURS)].to_numpy(dtype=np.float64),
            daily=part["daily"].to_numpy(dtype=np.float64),
            movement=part["movement"].to_numpy(dtype=bool),
        )


@dataclass
class Prepared:
    filled: FloatArray  # (n, 24) hours with missing ones interpolated
    totals: FloatArray  # (n,)
    profiles: FloatArray  # (n, 24), rows sum to 1
    n_missing: npt.NDArray[np.int64]


def prepare(series: SeriesInput) -> Prepared:
    hours = np.asarray(series.hours, dtype=np.float64)
    filled = hours.copy()
    n_missing = np.isnan(hours).sum(axis=1)
    idx = np.arange(24)
    for i in np.flatnonzero(n_missing):
        present = ~np.isnan(hours[i])
        if present.any():
            filled[i] = np.interp(idx, idx[present], hours[i, present])
        elif i > 0:  # no hour at all: the previous day's shape
            filled[i] = filled[i - 1]
        else:
            filled[i] = 1.0
    sums = filled.sum(axis=1)
    totals = np.where(np.isfinite(series.daily), series.daily, sums)
    if not np.isfinite(totals).all():
        # no hour at all and no daily total: carry the previous total (first day: the next one);
        # a request cannot have such a day (the service refuses it), a CSV can
        import pandas as pd

        totals = pd.Series(totals).ffill().bfill().to_numpy(dtype=np.float64)
    safe = np.where(sums > 0, sums, 1.0)
    profiles = np.where(sums[:, None] > 0, filled / safe[:, None], 1.0 / 24)
    return Prepared(filled, totals, profiles, n_missing.astype(np.int64))


# -------------------------------------------------------------------------------------- model


@dataclass
class SeriesStats:
    operator: str
    region: str
    mean_daily_mwh: float
    residual_scale: float  # robust scale of the relative residual


@dataclass
class EnergyModel:
    """Everything :func:`score` needs; built by :func:`training.fit`."""

    family: str
    forecaster: Any
    isolation_forest: IsolationForest
    profile_center: float
    profile_scale: float
    series: dict[str, SeriesStats]
    alerte: float
    critique: float
    clusters: dict[str, Any] = field(default_factory=dict)
    residual_norm: float = 1.0
    profile_norm: float = 1.0
    history_days: int = HISTORY_DAYS

    # The vigie.models.compiled hook: the forecaster and the isolation forest.
    def compiled_parts(self) -> dict[str, Any]:
        return {"forecaster": self.forecaster, "isolation_forest": self.isolation_forest}

    def with_compiled(self, predictors: Mapping[str, Any]) -> EnergyModel:
        return replace(
            self,
            forecaster=predictors.get("forecaster", self.forecaster),
            isolation_forest=predictors.get("isolation_forest", self.isolation_forest),
        )


def compiled_parts(model: EnergyModel, check_rows: Mapping[str, FloatArray]) -> list[Part]:
    """What :func:`vigie.models.compile.compile_parts` compiles, each part checked on its rows of
    ``check_rows`` (the validation days' forecast and profile features)."""
    from vigie.models.compile import Part  # training only: workers import no converter

    return [
        Part(
            "forecaster", model.forecaster, check_rows["forecaster"], FORECAST_TOLERANCE,
            "daily total / scale",
        ),
        Part(
            "isolation_forest", model.isolation_forest, check_rows["isolation_forest"],
            PROFILE_TOLERANCE, "score_samples",
        ),
    ]  # fmt: skip
