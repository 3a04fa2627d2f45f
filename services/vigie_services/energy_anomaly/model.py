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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from vigie.models import compiled
from vigie_services.energy_anomaly import data as dt

# scikit-learn and pandas are imported where training, evaluation and frames need them, never at
# import: a serving worker that loads the compiled serving artifact (vigie.models.store) imports
# this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd
    from sklearn.ensemble import IsolationForest

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


@functools.cache
def _holiday_table(first_year: int, last_year: int) -> tuple[int, npt.NDArray[np.bool_]]:
    """Day number (days since 1970-01-01) of 1 January ``first_year``, and per day from then to
    31 December ``last_year``: whether it is a French public holiday (:func:`data.is_holiday`)."""
    start = np.datetime64(f"{first_year:04d}-01-01", "D")
    end = np.datetime64(f"{last_year + 1:04d}-01-01", "D")
    table = np.zeros(int((end - start).astype(np.int64)), dtype=bool)
    for year in range(first_year, last_year + 1):
        for day in dt.french_holidays(year):
            table[int((np.datetime64(day, "D") - start).astype(np.int64))] = True
    return int(start.astype(np.int64)), table


def _mean(x: FloatArray, axis: int) -> FloatArray:
    """``x.mean(axis)`` of a float64 array as numpy computes it (the sum, then a division by
    the count), without ``np.mean``'s Python overhead (a few µs a call)."""
    out: FloatArray = np.add.reduce(x, axis=axis) / x.shape[axis]
    return out


def calendar_features(
    dates: pd.DatetimeIndex | npt.NDArray[np.datetime64], movement: npt.NDArray[np.bool_]
) -> FloatArray:
    """Calendar features (:data:`CALENDAR_FEATURES`) of ``dates`` (days): the :mod:`.data`
    calendar rules (holiday, bridge, year-end) on datetime64 days, all days at once in numpy;
    a request's few days come from a cache of those rows (each computed the same way)."""
    days = np.asarray(dates, dtype="datetime64[D]")
    flags = np.asarray(movement, dtype=np.float64)[:, None]
    if 0 < len(days) <= _CACHED_DAYS:
        rows = [_calendar_row(d) for d in days.astype(np.int64).tolist()]
        return np.hstack([np.array(rows), flags])
    return np.hstack([_calendar(days), flags])


_CACHED_DAYS = 16  # requests with up to this many scored days use _calendar_row


@functools.lru_cache(maxsize=4096)
def _calendar_row(day: int) -> FloatArray:
    """:func:`_calendar` of one day (days since 1970-01-01), read-only."""
    row = _calendar(np.array([day], dtype="datetime64[D]"))[0]
    row.flags.writeable = False
    return row


def _calendar(days: npt.NDArray[np.datetime64]) -> FloatArray:
    """The calendar features of :data:`CALENDAR_FEATURES` but ``movement_social``."""
    n = len(days)
    if n == 0:
        return np.empty((0, len(CALENDAR_FEATURES) - 1))
    number = days.astype(np.int64)  # days since 1970-01-01, a Thursday
    weekday = (number + 3) % 7  # Monday = 0
    dow = np.zeros((n, 7))
    dow[np.arange(n), weekday] = 1.0
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    base, table = _holiday_table(int(years.min()) - 1, int(years.max()) + 1)  # d-7 .. d+1
    offset = number - base
    holiday = table[offset]
    bridge = ((weekday == 0) & table[offset + 1]) | ((weekday == 4) & table[offset - 1])
    months = days.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    year_end = ((month == 12) & (day >= 24)) | ((month == 1) & (day <= 2))
    flags = np.column_stack(
        [holiday, bridge, year_end, table[offset - 1], table[offset - 7]]
    ).astype(np.float64)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    angle = 2 * np.pi * (day_of_year - 1) / 365.25
    season = np.column_stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)])
    return np.hstack([dow, flags, season])


def forecast_features(
    series: SeriesInput, prep: Prepared, series_mean: float
) -> tuple[FloatArray, FloatArray]:
    """Features of every scored day (rows ``HISTORY_DAYS..n-1``) and their ``scale``."""
    n = len(prep.totals)
    h = HISTORY_DAYS
    if n <= h:
        return np.empty((0, len(FORECAST_FEATURES))), np.empty(0)
    step = prep.totals.strides[0]
    windows = as_strided(prep.totals, (n - h, h), (step, step), writeable=False)  # days t-h..t-1
    scale = np.maximum(_mean(windows, 1), 1e-6)
    lags = windows[:, ::-1] / scale[:, None]  # lag_1 first
    level = scale / max(series_mean, 1e-6)
    cal = calendar_features(series.dates[h:], series.movement[h:])
    return np.hstack([lags, level[:, None], cal]), scale


def profile_features(prep: Prepared) -> FloatArray:
    """Profile features (see :data:`PROFILE_FEATURES`) of every scored day."""
    return _profile_features(prep)[0]


def _profile_features(prep: Prepared) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """:func:`profile_features` and, per scored day, the best shift against the recent median
    reference (what :func:`score` reports), from one :func:`best_shift` per reference."""
    n = len(prep.totals)
    h = HISTORY_DAYS
    if n <= h:
        return np.empty((0, len(PROFILE_FEATURES))), np.empty(0, dtype=np.int64)
    p = prep.profiles[h:]
    # the references, stacked: the recent median, the same weekday last week
    refs = np.stack([_reference(prep), prep.profiles[: n - h]])
    deviation = np.abs(p - refs)
    l1 = np.min(deviation.sum(axis=2), axis=0)
    max_dev = np.min(deviation.max(axis=2), axis=0) * 24
    shifts, gains = _best_shifts(p, refs)
    gain = np.min(gains, axis=0)
    spreads = np.stack([p, refs[0]]).std(axis=2)  # the day's and the median's, row by row
    spread = np.log((spreads[0] + 1e-4) / (spreads[1] + 1e-4))
    today, yesterday = prep.filled[h:], prep.filled[h - 1 : -1]
    change = _mean(np.abs(today - yesterday), 1) / np.maximum(_mean(yesterday, 1), 1e-9)
    log_change = np.log10(change + 1e-6)
    jump = np.abs(np.diff(p, axis=1)).max(axis=1) * 24
    return np.column_stack([l1, max_dev, gain, spread, log_change, jump]), shifts[0]


def _corr_rows(a: FloatArray, b: FloatArray) -> FloatArray:
    """Correlation of matching rows (last axis) of ``a`` and ``b`` (broadcast)."""
    a = a - _mean(a, -1)[..., None]
    b = b - _mean(b, -1)[..., None]
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    return np.asarray(np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1), 0.0))


# Hours of the reference unshifted (row 0), then moved by each of _SHIFTS (np.roll's order).
_SHIFT_HOURS = np.array([np.arange(24)] + [np.roll(np.arange(24), k) for k in _SHIFTS])
_SHIFT_VALUES = np.array(_SHIFTS)


def best_shift(p: FloatArray, ref: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Per row: the shift (hours, the day is the reference moved by it) that correlates best with
    the reference, and the correlation gain over no shift (0 when no shift does better)."""
    shift, gain = _best_shifts(p, ref[None])
    return shift[0], gain[0]


def _best_shifts(p: FloatArray, refs: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """:func:`best_shift` of ``p`` against each reference of ``refs`` (``(r, rows, 24)``), with
    every correlation (each reference, unshifted and shifted) in one :func:`_corr_rows` call."""
    shifted_refs = np.take(refs, _SHIFT_HOURS, axis=2)  # C order: rows of 24 hours reduce alike
    corrs = _corr_rows(p[None, :, None, :], shifted_refs)  # (r, rows, 1 + shifts)
    base, shifted = corrs[:, :, 0], corrs[:, :, 1:]
    best = shifted.argmax(axis=2)
    gain = np.take_along_axis(shifted, best[:, :, None], axis=2)[:, :, 0] - base
    shift = _SHIFT_VALUES[best]
    return np.where(gain > 0, shift, 0).astype(np.int64), np.maximum(gain, 0.0)


def stuck_flags(series: SeriesInput, prep: Prepared) -> npt.NDArray[np.bool_]:
    """Stuck-meter rule (flat, repeated or 6+ equal consecutive hours) for every scored day.

    Days with every hour present (nearly all of them) are checked together in numpy; a day with
    missing hours goes through :func:`_stuck_day`, the rule written for one day (the same
    rule: on a complete day both give the same answer, see the tests)."""
    h = HISTORY_DAYS
    hours = np.asarray(series.hours, dtype=np.float64)
    if len(hours) <= h:
        return np.zeros(0, dtype=bool)
    rows, prevs = hours[h:], prep.filled[h - 1 : -1]
    tol = np.maximum(np.abs(_mean(rows, 1)), 1e-9)
    flat = (rows.max(axis=1) - rows.min(axis=1)) < FLAT_RANGE * tol
    change = _mean(np.abs(rows - prevs), 1)
    repeat = change < REPEAT_CHANGE * np.maximum(_mean(prevs, 1), 1e-9)
    same = np.abs(np.diff(rows, axis=1)) <= 1e-9 * tol[:, None]  # hour i equal to hour i - 1
    # STUCK_RUN equal hours in a row = STUCK_RUN - 1 equal steps from some hour on
    starts = same.shape[1] - (STUCK_RUN - 1) + 1
    run = same[:, :starts]
    for k in range(1, STUCK_RUN - 1):
        run = run & same[:, k : k + starts]
    out: npt.NDArray[np.bool_] = flat | repeat | np.any(run, axis=1)
    for i in np.flatnonzero(np.isnan(rows).any(axis=1)).tolist():
        out[i] = _stuck_day(rows[i], prevs[i])
    return out


def _stuck_day(row: FloatArray, prev: FloatArray) -> bool:
    """The stuck-meter rule of one day (``row``: its hours, NaN = missing; ``prev``: the
    previous day's filled hours)."""
    present = row[~np.isnan(row)]
    mean = float(present.mean()) if present.size else 0.0
    tol = max(abs(mean), 1e-9)
    flat = present.size >= 12 and float(present.max() - present.min()) < FLAT_RANGE * tol
    both = ~np.isnan(row)
    repeat = both.sum() >= 12 and float(
        np.abs(row[both] - prev[both]).mean()
    ) < REPEAT_CHANGE * max(float(prev.mean()), 1e-9)
    run, longest = 1, 1
    for i in range(1, 24):
        same = (
            not np.isnan(row[i])
            and not np.isnan(row[i - 1])
            and abs(row[i] - row[i - 1]) <= 1e-9 * tol
        )
        run = run + 1 if same else 1
        longest = max(longest, run)
    return bool(flat or repeat or longest >= STUCK_RUN)


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


def compiled_parts(model: EnergyModel, check_rows: Mapping[str, FloatArray]) -> list[compiled.Part]:
    """What :func:`vigie.models.compiled.compile_parts` compiles, each part checked on its rows of
    ``check_rows`` (the validation days' forecast and profile features)."""
    return [
        compiled.Part(
            "forecaster", model.forecaster, check_rows["forecaster"], FORECAST_TOLERANCE,
            "daily total / scale",
        ),
        compiled.Part(
            "isolation_forest", model.isolation_forest, check_rows["isolation_forest"],
            PROFILE_TOLERANCE, "score_samples",
        ),
    ]  # fmt: skip


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


assert HISTORY_DAYS % 2 == 1, "_reference takes the middle profile as the median"


def _reference(prep: Prepared) -> FloatArray:
    h = HISTORY_DAYS
    row, column = prep.profiles.strides  # the windows of sliding_window_view(..., h, axis=0)
    n = len(prep.totals) - h
    windows = as_strided(prep.profiles, (n, 24, h), (row, column, row), writeable=False)
    # np.median(windows, axis=2) of the odd HISTORY_DAYS (finite) profiles: the middle one
    ref = np.partition(windows, h // 2, axis=2)[:, :, h // 2]
    return np.asarray(ref / ref.sum(axis=1, keepdims=True))


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
