"""summary_from_raw and features: the one definition shared by training and serving."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from tests.conftest import real_data_dir
from tests.services.solar_flare.conftest import simulation
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.consistency import consistency_errors

D = date(2017, 9, 6)
QUIET_SN = [10.0] * 26 + [40.0]


def at(days_before: int, hour: int = 12, minute: int = 0) -> datetime:
    day = D - timedelta(days=days_before)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def ev(cls: str, days_before: int, hour: int = 12) -> sm.FlareEvent:
    return sm.FlareEvent(cls, at(days_before, hour))


# -- class strings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "letter", "flux"),
    [("M2.3", "M", 2.3e-5), ("X1.0", "X", 1e-4), ("C5", "C", 5e-6), ("X9.3", "X", 9.3e-4),
     ("X28", "X", 2.8e-3), ("A8.1", "A", 8.1e-8), ("B0.6", "B", 6e-8), ("M9.99", "M", 9.99e-5)],
)  # fmt: skip
def test_class_strings_parse_to_flux(text: str, letter: str, flux: float) -> None:
    got_letter, magnitude, got_flux = sm.parse_flare_class(text)
    assert got_letter == letter and magnitude > 0
    assert got_flux == pytest.approx(flux, rel=1e-12)


@pytest.mark.parametrize(
    "text",
    ["Q1.0", "M-2", "M", "", "m2.3", "M2.3 ", " M2.3", "M2,3", "M1e2", "M0", "M0.0", "C12",
     "M10.0", "X101", "MX1", "2.3M", "M.5", "M5.", "XX"],
)  # fmt: skip
def test_malformed_class_strings_are_refused(text: str) -> None:
    with pytest.raises(sm.FlareClassError):
        sm.parse_flare_class(text)


def test_flux_back_to_class_string() -> None:
    assert sm.flare_class_of_flux(2.3e-5) == "M2.3"
    assert sm.flare_class_of_flux(1e-4) == "X1.0"
    assert sm.flare_class_of_flux(6e-8) == "A6.0"
    with pytest.raises(ValueError):
        sm.flare_class_of_flux(0.0)


# -- summary_from_raw ---------------------------------------------------------------------------
def test_counts_per_window_include_day_d_and_stop_at_its_edge() -> None:
    flares = [
        ev("C1.0", 0), ev("C2.0", 0), ev("B3.0", 0), ev("A5.0", 0),  # today
        ev("C3.0", 2),  # last day of the 3-day window
        ev("C4.0", 3),  # first day outside it
        ev("M1.0", 6),  # last day of the 7-day window
        ev("M2.0", 7),
        ev("X1.5", 26),  # oldest day of the 27-day window
    ]  # fmt: skip
    s = sm.summary_from_raw(D, flares, QUIET_SN)
    assert s["date"] == "2017-09-06"
    assert (s["n_B_flares_today"], s["n_C_flares_today"], s["n_M_flares_today"]) == (1, 2, 0)
    assert (s["n_C_flares_last_3d"], s["n_C_flares_last_7d"], s["n_C_flares_last_27d"]) == (3, 4, 4)
    assert (s["n_M_flares_last_3d"], s["n_M_flares_last_7d"], s["n_M_flares_last_27d"]) == (0, 1, 2)
    assert (s["n_X_flares_today"], s["n_X_flares_last_7d"], s["n_X_flares_last_27d"]) == (0, 0, 1)
    assert s["max_xray_flux_today"] == pytest.approx(2e-6)
    assert s["max_xray_flux_last_3d"] == pytest.approx(3e-6)
    assert s["max_xray_flux_last_27d"] == pytest.approx(1.5e-4)
    assert s["days_since_last_M_or_X"] == 6
    assert s["days_since_last_X"] == 26
    assert list(s) == ["date", *sm.SUMMARY_NAMES]


def test_a_flare_counts_on_the_utc_date_of_its_peak() -> None:
    # 23:30 at UTC-02:00 on d-1 is 01:30Z on d: today. 00:30+02:00 on d is 22:30Z on d-1.
    late = sm.FlareEvent("M1.0", datetime(2017, 9, 5, 23, 30, tzinfo=timezone(timedelta(hours=-2))))
    early = sm.FlareEvent("X2.0", datetime(2017, 9, 6, 0, 30, tzinfo=timezone(timedelta(hours=2))))
    s = sm.summary_from_raw(D, [late, early], QUIET_SN)
    assert s["n_M_flares_today"] == 1
    assert s["n_X_flares_today"] == 0 and s["n_X_flares_last_3d"] == 1
    assert s["days_since_last_M_or_X"] == 0 and s["days_since_last_X"] == 1


def test_days_since_saturate_at_the_window_and_are_zero_today() -> None:
    quiet = sm.summary_from_raw(D, [ev("C9.9", 1)], QUIET_SN)
    assert quiet["days_since_last_M_or_X"] == sm.DAYS_SINCE_CAP == 27
    assert quiet["days_since_last_X"] == 27
    today = sm.summary_from_raw(D, [ev("X1.0", 0, hour=0)], QUIET_SN)
    assert today["days_since_last_M_or_X"] == 0 and today["days_since_last_X"] == 0


def test_max_flux_is_zero_without_flares_and_counts_a_flares() -> None:
    empty = sm.summary_from_raw(D, [], QUIET_SN)
    assert empty["max_xray_flux_today"] == 0 and empty["max_xray_flux_last_27d"] == 0
    assert all(empty[c] == 0 for c in sm.SUMMARY_NAMES if c.startswith("n_"))
    only_a = sm.summary_from_raw(D, [ev("A7.0", 0)], QUIET_SN)
    assert only_a["max_xray_flux_today"] == pytest.approx(7e-8)
    assert only_a["n_B_flares_today"] == 0


def test_sunspot_fields() -> None:
    sn = [float(v) for v in range(27)]  # 0 .. 26, day d = 26
    s = sm.summary_from_raw(D, [], sn, sunspot_number_std=2.5, sunspot_n_obs=31)
    assert s["sunspot_number"] == 26 and s["sunspot_number_change_1d"] == 1
    assert s["sunspot_number_mean_27d"] == 13.0
    assert (s["sunspot_number_std"], s["sunspot_n_obs"]) == (2.5, 31)
    thirds = sm.summary_from_raw(D, [], [1.0] * 26 + [2.0])
    assert thirds["sunspot_number_mean_27d"] == 1.04  # 28/27 rounded to 2 decimals
    assert thirds["sunspot_number_std"] is None


@pytest.mark.parametrize("n", [0, 1, 26, 28])
def test_sunspot_history_must_be_27_days(n: int) -> None:
    with pytest.raises(ValueError, match="27"):
        sm.summary_from_raw(D, [], [5.0] * n)


def test_sunspot_numbers_must_be_finite_and_non_negative() -> None:
    with pytest.raises(ValueError):
        sm.summary_from_raw(D, [], [5.0] * 26 + [float("nan")])
    with pytest.raises(ValueError):
        sm.summary_from_raw(D, [], [-1.0] + [5.0] * 26)


@pytest.mark.parametrize("days_before", [-1, 27, 40])
def test_flares_outside_the_window_are_refused(days_before: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        sm.summary_from_raw(D, [ev("C1.0", days_before)], QUIET_SN)


def test_bad_class_in_raw_is_refused() -> None:
    with pytest.raises(sm.FlareClassError):
        sm.summary_from_raw(D, [ev("Q1.0", 0)], QUIET_SN)


def _rolling_reference(
    sim_events: list[list[sm.FlareEvent]], sunspots: list[float]
) -> pd.DataFrame:
    """An independent, vectorised definition of the daily table (the data set's README)."""
    rows = []
    for day_events in sim_events:
        letters = [e.goes_class[0] for e in day_events]
        fluxes = [sm.parse_flare_class(e.goes_class)[2] for e in day_events]
        rows.append({**{f"n_{c}": letters.count(c) for c in "BCMX"},
                     "flux": max(fluxes, default=0.0)})  # fmt: skip
    daily = pd.DataFrame(rows)
    daily["sn"] = sunspots
    ref = pd.DataFrame(index=daily.index)
    ref["sunspot_number"] = daily["sn"]
    ref["sunspot_number_mean_27d"] = daily["sn"].rolling(27).mean().round(2)
    ref["sunspot_number_change_1d"] = daily["sn"].diff()
    for c in "BCMX":
        ref[f"n_{c}_flares_today"] = daily[f"n_{c}"]
    for c in "CMX":
        for w in (3, 7, 27):
            ref[f"n_{c}_flares_last_{w}d"] = daily[f"n_{c}"].rolling(w).sum()
    ref["max_xray_flux_today"] = daily["flux"]
    ref["max_xray_flux_last_3d"] = daily["flux"].rolling(3).max()
    ref["max_xray_flux_last_27d"] = daily["flux"].rolling(27).max()
    for name, cols in (("days_since_last_M_or_X", ["n_M", "n_X"]), ("days_since_last_X", ["n_X"])):
        hit = daily[cols].sum(axis=1) > 0
        last = pd.Series(np.where(hit, daily.index, np.nan)).ffill()
        ref[name] = np.minimum(daily.index - last.fillna(-1000), sm.DAYS_SINCE_CAP)
    return ref


def test_summary_matches_an_independent_rolling_definition() -> None:
    sim = simulation()
    ref = _rolling_reference(sim.events, sim.sunspots)
    checked = 0
    for index in range(sm.WINDOW_DAYS - 1, len(sim.events), 7):
        s = sm.summary_from_raw(
            sim.day(index), sim.window_events(index), sim.window_sunspots(index)
        )
        for col in sm.MODEL_INPUTS:
            assert s[col] == pytest.approx(ref.loc[index, col], rel=1e-12), (index, col)
        checked += 1
    assert checked > 50


# -- features -----------------------------------------------------------------------------------
def test_features_have_the_documented_columns_and_no_date() -> None:
    table = simulation().table
    x = ft.features(table)
    assert x.shape == (len(table), len(ft.FEATURE_NAMES)) == (len(table), len(ft.FEATURES))
    assert np.isfinite(x).all()
    assert all(f["unit"] for f in ft.FEATURES)
    assert not any("date" in n or "year" in n for n in ft.FEATURE_NAMES)
    assert not set(sm.MODEL_INPUTS) & {"sunspot_n_obs", "sunspot_number_std"}
    assert len(ft.MONOTONIC) == len(ft.FEATURE_NAMES)


def test_features_ignore_targets_and_clip_days_since_at_27() -> None:
    row = sm.summary_from_raw(D, [ev("C1.0", 0)], QUIET_SN)
    a = pd.DataFrame([row])
    b = pd.DataFrame([{**row, "days_since_last_M_or_X": 300, "days_since_last_X": 365,
                       "flare_M_or_above_next_24h": 1, "sunspot_n_obs": 99}])  # fmt: skip
    assert np.array_equal(ft.features(a), ft.features(b))
    c = pd.DataFrame([{**row, "days_since_last_M_or_X": 26}])
    assert not np.array_equal(ft.features(a), ft.features(c))


def test_features_refuse_missing_columns_and_nan() -> None:
    row = sm.summary_from_raw(D, [], QUIET_SN)
    with pytest.raises(ValueError, match="missing"):
        ft.features(pd.DataFrame([row]).drop(columns=["n_C_flares_last_7d"]))
    with pytest.raises(ValueError, match="finite"):
        ft.features(pd.DataFrame([{**row, "sunspot_number": float("nan")}]))


def test_consistency_errors_name_the_column() -> None:
    good = sm.summary_from_raw(D, [ev("M1.0", 0), ev("C1.0", 5)], QUIET_SN)
    assert consistency_errors(good) == []
    bad = {**good, "n_C_flares_last_27d": 0}
    assert [c for c, _ in consistency_errors(bad)] == ["n_C_flares_last_27d"]
    bad = {**good, "max_xray_flux_last_27d": 1e-7}
    assert [c for c, _ in consistency_errors(bad)] == ["max_xray_flux_last_27d"]
    bad = {**good, "days_since_last_M_or_X": 4}
    assert "days_since_last_M_or_X" in [c for c, _ in consistency_errors(bad)]


# -- the real file ------------------------------------------------------------------------------
def _placeholder_events(row: pd.Series, day: date) -> list[sm.FlareEvent]:
    """Events reproducing one day of the real file: counts per class and the day's max flux."""
    peak = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    flux = float(row["max_xray_flux_today"])
    events: list[str] = []
    for letter in "BCMX":
        base = sm.CLASS_BASE_W_M2[letter]
        magnitude = min(1.0, flux / base) if flux > 0 else 1.0
        events += [f"{letter}{magnitude:.6g}"] * int(row[f"n_{letter}_flares_today"])
    if flux > 0:
        letter = sm.flare_class_of_flux(flux)[0]
        exact = f"{letter}{flux / sm.CLASS_BASE_W_M2[letter]:.6g}"
        same = [i for i, e in enumerate(events) if e[0] == letter]
        if same:
            events[same[0]] = exact
        else:
            events.append(exact)  # an A flare (not counted by the file)
    return [sm.FlareEvent(e, peak) for e in events]


@pytest.mark.realdata
def test_summary_from_raw_reproduces_the_real_file() -> None:
    path = real_data_dir() / "solar_flare" / "daily_train.csv"
    if not path.is_file():
        pytest.skip(f"real data file not found: {path} (set VIGIE_DATA_DIR)")
    table = sm.load_table(path)
    assert [consistency_errors(r) for r in table.to_dict("records")] == [[]] * len(table)
    days = [ts.date() for ts in table["date"]]
    per_day = [
        _placeholder_events(row, day) for day, (_, row) in zip(days, table.iterrows(), strict=True)
    ]
    sn = table["sunspot_number"].tolist()
    for i in range(26, len(table), 3):
        window = [e for k in range(i - 26, i + 1) for e in per_day[k]]
        s = sm.summary_from_raw(days[i], window, sn[i - 26 : i + 1])
        row = table.iloc[i]
        for col in sm.MODEL_INPUTS:
            want = float(row[col])
            if col.startswith("days_since"):
                want = min(want, sm.DAYS_SINCE_CAP)
            assert s[col] == pytest.approx(want, rel=1e-9, abs=0), (days[i], col)
    x_file = ft.features(table.iloc[26:])
    assert np.isfinite(x_file).all()
