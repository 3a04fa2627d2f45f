"""Metrics, operating points, the level rule, the per-asset settings and the model wiring of
solar-flare (no servers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tests.services.solar_flare.conftest import simulation
from vigie.contract.levels import Level
from vigie_services.solar_flare import fitting as fi
from vigie_services.solar_flare import metrics as mt
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.forecast import (
    RADIO_BLACKOUT_HINT,
    Thresholds,
    class_probabilities,
    most_likely_class,
)
from vigie_services.solar_flare.service import AssetSettings, FlareDay, level_rule


@pytest.fixture(scope="module")
def fitted() -> fi.TrainingResult:
    return fi.fit(simulation().table)


TH = Thresholds(alerte_probability_m_or_above=0.25, critique_probability_x=0.1)
EPS = 1e-9


# -- the level rule at its boundaries -----------------------------------------------------------
@pytest.mark.parametrize(
    ("p_m", "p_x", "level"),
    [
        (0.25 - EPS, 0.0, Level.NORMAL),
        (0.25, 0.0, Level.ALERTE),
        (0.25 + EPS, 0.0, Level.ALERTE),
        (0.25 - EPS, 0.1 - EPS, Level.NORMAL),
        (0.3, 0.1 - EPS, Level.ALERTE),
        (0.3, 0.1, Level.CRITIQUE),
        (0.3, 0.1 + EPS, Level.CRITIQUE),
        (0.0, 0.0, Level.NORMAL),
        (1.0, 1.0, Level.CRITIQUE),
    ],
)
def test_level_rule_boundaries(p_m: float, p_x: float, level: Level) -> None:
    got, crossings = level_rule(p_m, p_x, TH)
    assert got is level
    crossed = {c["probability"]: c for c in crossings}
    assert ("probability_m_or_above" in crossed) == (p_m >= 0.25)
    assert ("probability_x" in crossed) == (p_x >= 0.1)
    for c in crossings:
        assert c["value"] >= c["threshold"]
    if "probability_x" in crossed:
        assert crossed["probability_x"]["level"] is Level.CRITIQUE
        assert crossed["probability_x"]["threshold"] == 0.1


def test_critique_does_not_need_alerte() -> None:
    # Coherent probabilities make P(X) <= P(>=M); with thresholds t_X > t_M this never happens,
    # but a per-asset override may set t_X below t_M: CRITIQUE still follows P(X) alone.
    low = Thresholds(alerte_probability_m_or_above=0.5, critique_probability_x=0.05)
    level, crossings = level_rule(0.2, 0.06, low)
    assert level is Level.CRITIQUE and [c["probability"] for c in crossings] == ["probability_x"]


def test_asset_thresholds_must_be_probabilities() -> None:
    for bad in (0.0, -0.1, 1.5, True, "0.3"):
        with pytest.raises(ValidationError):
            AssetSettings.model_validate({"alerte_probability_m_or_above": bad})
        with pytest.raises(ValidationError):
            AssetSettings.model_validate({"critique_probability_x": bad})
    with pytest.raises(ValidationError, match="extra"):
        AssetSettings.model_validate({"alerte_probability_m": 0.3})


def test_asset_settings_override_only_what_they_set() -> None:
    card = Thresholds.of_card(
        {"alerte_probability_m_or_above": 0.25, "critique_probability_x": 0.1}
    )
    only_x = AssetSettings.model_validate({"critique_probability_x": 0.2})
    assert card.overridden(only_x.model_dump(exclude_none=True)) == Thresholds(0.25, 0.2)
    assert card.overridden(AssetSettings().model_dump(exclude_none=True)) == card
    both = AssetSettings.model_validate(
        {"alerte_probability_m_or_above": 1, "critique_probability_x": 1}
    )
    strict = card.overridden(both.model_dump(exclude_none=True))
    assert strict == Thresholds(1.0, 1.0)
    # JSON integers become floats: a threshold is answered as 1.0 whatever the file says
    assert all(type(v) is float for v in vars(strict).values())


# -- most likely class and the radio-blackout hint ----------------------------------------------
@pytest.mark.parametrize(
    ("p", "cls", "hint"),
    [
        ((0.3, 0.1, 0.01), "none", "none"),
        ((0.9, 0.2, 0.02), "C", "none"),
        ((0.95, 0.7, 0.1), "M", "R1-R2"),
        ((0.99, 0.95, 0.6), "X", "R3-R5"),
        ((0.5, 0.0, 0.0), "none", "none"),  # tie none/C -> the lower class
    ],
)
def test_most_likely_class_and_hint(p: tuple[float, float, float], cls: str, hint: str) -> None:
    probs = class_probabilities(*p)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in probs.values())
    assert most_likely_class(probs) == cls
    assert RADIO_BLACKOUT_HINT[cls] == hint


# -- metrics ------------------------------------------------------------------------------------
def test_tss_and_hss_on_a_known_table() -> None:
    # tp=3 fn=1 fp=2 tn=4
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    yes = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert mt.tss(y, yes) == pytest.approx(3 / 4 - 2 / 6)
    assert mt.hss(y, yes) == pytest.approx(2 * (3 * 4 - 1 * 2) / (4 * 5 + 5 * 6))


def test_undefined_metrics_are_none() -> None:
    y = np.zeros(10, dtype=np.int64)
    p = np.linspace(0, 0.2, 10)
    assert mt.roc_auc(y, p) is None
    assert mt.tss(y, p >= 0.1) is None
    assert mt.hss(y, np.zeros(10, dtype=bool)) is None
    assert mt.brier_skill_score(y, p, 0.0) is None
    assert mt.brier_skill_score(y, p, 0.05) is not None


def test_brier_skill_score_against_climatology() -> None:
    y = np.array([0, 0, 0, 1])
    assert mt.brier_skill_score(y, np.full(4, 0.25), 0.25) == pytest.approx(0.0)
    assert mt.brier_skill_score(y, y.astype(float), 0.25) == pytest.approx(1.0)
    assert mt.brier_skill_score(y, np.full(4, 0.9), 0.25) < 0


def test_operating_points() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    p = np.array([0.01, 0.02, 0.05, 0.1, 0.12, 0.2, 0.3, 0.35, 0.5, 0.8])
    t = mt.max_tss_threshold(y, p, 0.3)
    assert t == 0.3 and mt.tss(y, p >= t) == pytest.approx(1.0 - 1 / 7)
    assert mt.max_hss_threshold(y, p, 0.3) in {0.3, 0.5}
    assert mt.max_tss_threshold(np.zeros(10, dtype=np.int64), p, 0.0123) == 0.0123


def test_evaluate_on_a_slice_without_x_gives_null_not_nan(fitted: fi.TrainingResult) -> None:
    table = simulation().table.iloc[:250].copy()
    table["flare_X_next_24h"] = 0
    out = mt.evaluate(fitted.model, table)
    assert out["x"]["roc_auc"] is None and out["x"]["tss"] is None
    assert out["x"]["brier_skill_score"] is not None
    for key in ("c", "m"):
        assert all(isinstance(v, float) and np.isfinite(v) for v in out[key].values())


# -- training -----------------------------------------------------------------------------------
def test_split_is_time_ordered_with_a_gap() -> None:
    table = simulation().table
    train, val, info = fi.split(table)
    assert train["date"].max() + pd.Timedelta(days=fi.GAP_DAYS) < val["date"].min()
    assert len(val) == int(np.ceil(0.2 * len(table)))
    assert val["date"].iloc[-1] == table["date"].iloc[-1]
    assert info["gap_days"] == 27
    with pytest.raises(ValueError, match="too few"):
        fi.split(table.iloc[:100])


def test_fit_compares_candidates_and_probabilities_are_coherent(
    fitted: fi.TrainingResult,
) -> None:
    table = simulation().table
    result = fitted
    assert {c.family for c in fi.candidates()} == {"logistic", "hist_gradient_boosting"}
    assert set(result.candidates) == {c.name for c in fi.candidates()}
    for entry in result.candidates.values():
        for key in md.KEYS:
            assert {"tss", "hss", "roc_auc", "brier_skill_score", "threshold"} <= set(
                entry["metrics"][key]
            )
    best = max(result.candidates.values(), key=lambda c: c["selection_score"])
    assert result.candidates[result.model.candidate]["selection_score"] == best["selection_score"]
    assert result.model.thresholds == {k: result.metrics[k]["threshold"] for k in md.KEYS}
    probs = md.predict_table(result.model, table)
    assert np.all(probs["x"] <= probs["m"]) and np.all(probs["m"] <= probs["c"])
    assert all(np.all((p >= 0) & (p <= 1)) for p in probs.values())
    climatology = {k: table[sm.TARGETS[k]].mean() for k in md.KEYS}
    assert result.model.climatology == pytest.approx(climatology)


# -- the measurement schema ---------------------------------------------------------------------
def _day(**kw: object) -> dict[str, object]:
    sim = simulation()
    return {"timestamp": sim.timestamp(100), **kw}


def test_schema_needs_exactly_one_of_summary_or_raw() -> None:
    sim = simulation()
    FlareDay.model_validate(_day(summary=sim.summary_json(100)))
    FlareDay.model_validate(_day(raw=sim.raw_json(100)))
    for bad in (_day(), _day(summary=sim.summary_json(100), raw=sim.raw_json(100))):
        with pytest.raises(ValidationError, match="exactly one"):
            FlareDay.model_validate(bad)


def test_schema_summary_fields_are_the_csv_columns() -> None:
    from vigie_services.solar_flare.service import DailySummary

    assert tuple(DailySummary.model_fields) == sm.SUMMARY_NAMES


def test_timestamp_must_be_midnight_utc() -> None:
    sim = simulation()
    FlareDay.model_validate({"timestamp": "2011-04-11T02:00:00+02:00", "raw": sim.raw_json(100)})
    with pytest.raises(ValidationError, match="00:00:00Z"):
        FlareDay.model_validate({"timestamp": "2011-04-11T12:00:00Z", "raw": sim.raw_json(100)})
