"""The features of a day (see :mod:`.model` for what they mean): calendar, forecast lags,
hourly-profile features against the references, time shifts and stuck-meter rules."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly.model import (
    _SHIFTS,
    CALENDAR_FEATURES,
    FLAT_RANGE,
    FORECAST_FEATURES,
    HISTORY_DAYS,
    PROFILE_FEATURES,
    REPEAT_CHANGE,
    STUCK_RUN,
    FloatArray,
    Prepared,
    SeriesInput,
)

if TYPE_CHECKING:
    import pandas as pd


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


assert HISTORY_DAYS % 2 == 1, "_reference takes the middle profile as the median"


def _reference(prep: Prepared) -> FloatArray:
    h = HISTORY_DAYS
    row, column = prep.profiles.strides  # the windows of sliding_window_view(..., h, axis=0)
    n = len(prep.totals) - h
    windows = as_strided(prep.profiles, (n, 24, h), (row, column, row), writeable=False)
    # np.median(windows, axis=2) of the odd HISTORY_DAYS (finite) profiles: the middle one
    ref = np.partition(windows, h // 2, axis=2)[:, :, h // 2]
    return np.asarray(ref / ref.sum(axis=1, keepdims=True))
