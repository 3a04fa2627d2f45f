"""The numpy forms of the per-day rules (calendar, stuck meter, profile shifts) against the
per-day code they replaced, bit for bit, on synthetic series (no server, no trained model)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.services.energy_anomaly.synthetic import day_measurements, gas_frame
from vigie.contract.batch import Batch
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import features as ft
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc
from vigie_services.energy_anomaly.service import DayMeasurement, EnergyAnomalyService

FRAME = gas_frame(start="2019-12-01", days=500, seed=11)
SERIES = "grtgaz.ile-de-france"


# ------------------------------------------------------------- the per-day code, as it was


def reference_calendar(dates: pd.DatetimeIndex, movement: np.ndarray) -> np.ndarray:
    days = [d.date() for d in dates]
    dow = np.zeros((len(days), 7))
    dow[np.arange(len(days)), [d.weekday() for d in days]] = 1.0
    one = pd.Timedelta(days=1)
    flags = np.array(
        [
            [
                dt.is_holiday(d),
                dt.is_bridge(d),
                dt.is_year_end(d),
                dt.is_holiday((ts - one).date()),
                dt.is_holiday((ts - 7 * one).date()),
            ]
            for d, ts in zip(days, dates, strict=True)
        ],
        dtype=np.float64,
    ).reshape(len(days), 5)
    angle = 2 * np.pi * (dates.day_of_year.to_numpy() - 1) / 365.25
    season = np.column_stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)])
    return np.hstack([dow, flags, season, np.asarray(movement, dtype=np.float64)[:, None]])


def reference_stuck(hours: np.ndarray, filled: np.ndarray) -> np.ndarray:
    out = []
    for t in range(md.HISTORY_DAYS, len(hours)):
        row = hours[t]
        present = row[~np.isnan(row)]
        mean = float(present.mean()) if present.size else 0.0
        tol = max(abs(mean), 1e-9)
        flat = present.size >= 12 and float(present.max() - present.min()) < md.FLAT_RANGE * tol
        prev = filled[t - 1]
        both = ~np.isnan(row)
        repeat = both.sum() >= 12 and float(
            np.abs(row[both] - prev[both]).mean()
        ) < md.REPEAT_CHANGE * max(float(prev.mean()), 1e-9)
        run, longest = 1, 1
        for i in range(1, 24):
            same = (
                not np.isnan(row[i])
                and not np.isnan(row[i - 1])
                and abs(row[i] - row[i - 1]) <= 1e-9 * tol
            )
            run = run + 1 if same else 1
            longest = max(longest, run)
        out.append(bool(flat or repeat or longest >= md.STUCK_RUN))
    return np.array(out, dtype=bool)


def reference_corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.asarray(np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1), 0.0))


def reference_best_shift(p: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shifts = [k for k in range(-md.MAX_SHIFT, md.MAX_SHIFT + 1) if k != 0]
    base = reference_corr_rows(p, ref)
    corrs = np.column_stack([reference_corr_rows(p, np.roll(ref, k, axis=1)) for k in shifts])
    best = corrs.argmax(axis=1)
    gain = corrs[np.arange(len(p)), best] - base
    shift = np.array(shifts)[best]
    return np.where(gain > 0, shift, 0).astype(np.int64), np.maximum(gain, 0.0)


def reference_profile_features(prep: md.Prepared) -> np.ndarray:
    h = md.HISTORY_DAYS
    n = len(prep.totals)
    p = prep.profiles[h:]
    windows = np.lib.stride_tricks.sliding_window_view(prep.profiles, h, axis=0)[: n - h]
    median = np.median(windows, axis=2)
    refs = (median / median.sum(axis=1, keepdims=True), prep.profiles[: n - h])
    l1 = np.min([np.abs(p - r).sum(axis=1) for r in refs], axis=0)
    max_dev = np.min([np.abs(p - r).max(axis=1) for r in refs], axis=0) * 24
    gain = np.min([reference_best_shift(p, r)[1] for r in refs], axis=0)
    spread = np.log((p.std(axis=1) + 1e-4) / (refs[0].std(axis=1) + 1e-4))
    today, yesterday = prep.filled[h:], prep.filled[h - 1 : -1]
    change = np.abs(today - yesterday).mean(axis=1) / np.maximum(yesterday.mean(axis=1), 1e-9)
    jump = np.abs(np.diff(p, axis=1)).max(axis=1) * 24
    return np.column_stack([l1, max_dev, gain, spread, np.log10(change + 1e-6), jump])


# ------------------------------------------------------------------------ synthetic series


def series_with_anomalies(seed: int) -> md.SeriesInput:
    """One synthetic series with every kind of day the rules look at: flat, repeated, runs of
    equal hours, shifted profiles, missing hours (a few, most, all), zeros."""
    rng = np.random.default_rng(seed)
    part = FRAME[FRAME["series"] == SERIES].reset_index(drop=True)
    hours = part[list(dt.HOURS)].to_numpy(dtype=np.float64).copy()
    daily = part["daily"].to_numpy(dtype=np.float64).copy()
    for i in rng.choice(np.arange(8, len(hours)), size=120, replace=False):
        kind = rng.integers(9)
        if kind == 0:
            hours[i] = hours[i].mean()  # flat
        elif kind == 1:
            hours[i] = hours[i - 1]  # repeated
        elif kind == 2:
            start = rng.integers(0, 18)
            hours[i, start : start + rng.integers(4, 8)] = hours[i, start]  # a run
        elif kind == 3:
            hours[i] = np.roll(hours[i], rng.integers(-8, 9))
        elif kind == 4:
            start = rng.integers(0, 20)
            hours[i, start : start + rng.integers(1, 5)] = np.nan
        elif kind == 5:
            hours[i, rng.choice(24, size=rng.integers(12, 24), replace=False)] = np.nan
        elif kind == 6:
            hours[i] = np.nan
        elif kind == 7:
            hours[i] = 0.0
            daily[i] = 0.0
        else:
            hours[i] *= 1 + 1e-12 * rng.normal(size=24)  # near-equal hours
    return md.SeriesInput(
        dates=pd.DatetimeIndex(part["date"]),
        hours=hours,
        daily=daily,
        movement=part["movement"].to_numpy(dtype=bool),
    )


# -------------------------------------------------------------------------------- the tests


def test_calendar_features_equal_the_per_day_rules_over_decades() -> None:
    dates = pd.date_range("1968-01-01", "2041-12-31", freq="D")
    movement = np.random.default_rng(0).random(len(dates)) < 0.1
    expected = reference_calendar(dates, movement)
    assert np.array_equal(ft.calendar_features(dates, movement), expected)
    days = np.asarray(dates, dtype="datetime64[D]")  # what serving passes
    assert np.array_equal(ft.calendar_features(days, movement), expected)
    # a request's few days (cached rows, each computed alone): the same numbers
    for start in range(0, len(days), 7):
        few = slice(start, start + 1 + start % 16)
        assert np.array_equal(ft.calendar_features(days[few], movement[few]), expected[few])
    assert ft.calendar_features(days[:0], movement[:0]).shape == (0, len(md.CALENDAR_FEATURES))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stuck_flags_equal_the_per_day_rule(seed: int) -> None:
    series = series_with_anomalies(seed)
    prep = md.prepare(series)
    got = ft.stuck_flags(series, prep)
    expected = reference_stuck(np.asarray(series.hours), prep.filled)
    assert np.array_equal(got, expected)
    assert got.any() and not got.all()  # the series exercises both answers


def test_runs_of_equal_hours_count_anywhere_in_the_day() -> None:
    series = series_with_anomalies(5)
    hours = np.asarray(series.hours).copy()
    cases = {}  # day -> stuck?
    for day, (start, length) in enumerate(
        [(0, 6), (18, 6), (0, 5), (19, 5), (9, 6), (10, 5), (17, 7)], start=20
    ):
        hours[day] = FRAME[FRAME["series"] == SERIES][list(dt.HOURS)].to_numpy()[day]
        hours[day, start : start + length] = hours[day, start]
        cases[day] = length >= md.STUCK_RUN
    series = md.SeriesInput(series.dates, hours, series.daily, series.movement)
    prep = md.prepare(series)
    got = ft.stuck_flags(series, prep)
    assert np.array_equal(got, reference_stuck(hours, prep.filled))
    for day, stuck in cases.items():
        assert got[day - md.HISTORY_DAYS] == stuck, day


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_profile_features_and_shifts_equal_the_per_shift_code_bit_for_bit(seed: int) -> None:
    prep = md.prepare(series_with_anomalies(seed))
    assert np.array_equal(ft.profile_features(prep), reference_profile_features(prep))
    p = prep.profiles[md.HISTORY_DAYS :]
    ref = ft._reference(prep)
    for got, expected in zip(ft.best_shift(p, ref), reference_best_shift(p, ref), strict=True):
        assert np.array_equal(got, expected)
    features, shift = ft._profile_features(prep)
    assert np.array_equal(shift, reference_best_shift(p, ref)[0])
    assert np.array_equal(features, reference_profile_features(prep))


def test_series_input_of_a_request_reads_nulls_as_missing_and_days_as_dates() -> None:
    body = day_measurements(FRAME, SERIES, slice(100, 110))
    body[3]["hourly_mwh"][4:7] = [None, None, None]
    body[5]["daily_mwh"] = None
    ms = [DayMeasurement.model_validate(m) for m in body]
    series = EnergyAnomalyService.series_input(Batch("x", ms))
    assert np.isnan(series.hours[3, 4:7]).all() and not np.isnan(series.hours[3, :4]).any()
    assert np.isnan(series.daily[5]) and not np.isnan(series.daily[4])
    assert series.dates[0] == np.datetime64(body[0]["timestamp"][:10])
    late = DayMeasurement.model_validate(
        {**body[0], "timestamp": datetime(2020, 3, 1, 23, 30, tzinfo=UTC).isoformat()}
    )
    assert EnergyAnomalyService.series_input(Batch("x", [late])).dates[0] == np.datetime64(
        "2020-03-01"
    )


def test_levels_and_kinds_follow_the_rule_day_by_day(energy_model: md.EnergyModel) -> None:
    series = series_with_anomalies(4)
    s = sc.score(energy_model, SERIES, series)
    for i, (level, kinds) in enumerate(zip(s.levels, s.kinds, strict=True)):
        quality = bool(s.n_missing[i] > 0 or s.stuck[i] or s.shifted[i])
        expected = sc.level_of(
            float(s.score[i]), energy_model.alerte, energy_model.critique, quality
        )
        assert level == expected
        assert (kinds == []) == (level == "NORMAL")
        assert (dt.MISSING in kinds) == (level != "NORMAL" and bool(s.n_missing[i] > 0))
    assert {"ALERTE", "NORMAL"} <= set(s.levels)
