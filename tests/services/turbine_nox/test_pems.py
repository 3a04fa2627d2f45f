"""Unit tests of the turbine-nox model core: corrector, replay, evaluation keys, level rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.services.turbine_nox.synthetic import turbine_frame
from vigie.contract.errors import ConfigError
from vigie.contract.levels import Level
from vigie.settings import VigieSettings
from vigie_services.turbine_nox import pems
from vigie_services.turbine_nox.service import AssetLimits, TurbineNoxService, level_of

K = 2 + len(pems.INPUTS)
Z = np.r_[1.0, np.zeros(K - 1)]  # terms of an average operating point


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.0, n)


def learn_bias(corrector: pems.Corrector, bias: float, n: int, state=None, seed: int = 0):  # type: ignore[no-untyped-def]
    for i, e in enumerate(_noise(n, seed)):
        state, _ = corrector.learn(state, Z, 60.0, 60.0 + bias + e, key=f"{seed}-{i}")
    return state


def test_corrector_learns_a_bias_and_its_memory_is_the_documented_half_life() -> None:
    c = pems.Corrector.for_target("NOX")
    assert c.half_life == pytest.approx(69.0, abs=0.5)
    state = learn_bias(c, -8.0, 200)
    assert c.correction(state, Z[None, :])[0] == pytest.approx(-8.0, abs=0.6)
    # the bias goes away: after ~3 half-lives the old one weighs little
    state = learn_bias(c, 0.0, 210, state, seed=1)
    assert abs(c.correction(state, Z[None, :])[0]) < 1.5
    assert c.correction(None, Z[None, :])[0] == 0.0


def test_correction_is_bounded() -> None:
    c = pems.Corrector.for_target("NOX")
    state = None
    for i in range(300):  # a huge but sustained offset: learned, but capped
        state, _ = c.learn(state, Z, 60.0, 160.0 + (i % 7), key=str(i))
    assert c.correction(state, Z[None, :])[0] == pytest.approx(c.max_correction)
    assert c.corrected(state, Z[None, :], np.array([0.0]))[0] >= 0.0


def test_a_stuck_analyser_does_not_drag_the_correction() -> None:
    c = pems.Corrector.for_target("NOX")
    state = learn_bias(c, 0.0, 100)
    before = c.correction(state, Z[None, :])[0]
    outcomes = []
    for i in range(200):  # analyser frozen at 20 mg/m3 while the model says 60
        state, why = c.learn(state, Z, 60.0, 20.0, key=f"stuck-{i}")
        outcomes.append(why)
    assert outcomes.count("stuck") >= 198
    assert abs(c.correction(state, Z[None, :])[0] - before) < 1.0
    # it recovers when the analyser moves again
    state, why = c.learn(state, Z, 60.0, 60.3, key="alive")
    assert why == "learned"


def test_outliers_are_ignored_but_a_sustained_shift_is_learned() -> None:
    c = pems.Corrector.for_target("NOX")
    state = learn_bias(c, 0.0, 100)
    before = c.correction(state, Z[None, :])[0]
    for i in range(5):  # isolated spikes between normal values
        state, why = c.learn(state, Z, 60.0, 300.0 - i, key=f"spike-{i}")
        assert why == "outlier"
        state, _ = c.learn(state, Z, 60.0, 60.0 + 0.1 * i, key=f"ok-{i}")
    assert abs(c.correction(state, Z[None, :])[0] - before) < 0.5
    assert state["ignored"]["outlier"] == 5
    outcomes = [c.learn(state, Z, 60.0, 90.0 + 0.01 * i, key=f"shift-{i}")[1] for i in range(80)]
    assert outcomes[: c.max_reject_run - 1] == ["outlier"] * (c.max_reject_run - 1)
    assert "learned" in outcomes
    assert c.correction(state, Z[None, :])[0] > 15.0


def test_a_resent_observation_counts_once() -> None:
    c = pems.Corrector.for_target("NOX")
    state, why = c.learn(None, Z, 60.0, 50.0, key="2015-01-01T00:00:00+00:00")
    assert why == "learned"
    learned = state["learned"]
    state, why = c.learn(state, Z, 60.0, 51.0, key="2015-01-01T00:00:00+00:00")
    assert why == "duplicate" and state["learned"] == learned


def test_state_is_json() -> None:
    c = pems.Corrector.for_target("CO")
    state = learn_bias(c, 1.0, 30)
    assert json.loads(json.dumps(state)) == state


@pytest.fixture(scope="module")
def fitted() -> pems.TrainingResult:
    return pems.fit(turbine_frame(rows_per_year=400))


def test_fit_compares_both_families_and_validates_on_the_last_year(
    fitted: pems.TrainingResult,
) -> None:
    cands = fitted.hyperparameters["candidates"]
    assert set(cands) == {"ridge", "hist_gradient_boosting"}
    assert fitted.validation["validation_year"] == 2014
    assert fitted.validation["train_years"] == [2011, 2012, 2013]
    m = fitted.metrics["validation_2014"]
    # the drift of the last year hurts the static model; the replay corrects it
    assert m["nox_mae_online"] < m["nox_mae"]
    assert m["nox_r2_online"] > 0.6


def test_evaluate_keys_and_replay_uses_the_same_corrector(fitted: pems.TrainingResult) -> None:
    frame = turbine_frame(rows_per_year=150, years=(2015,), seed=3)
    out = pems.evaluate(fitted.model, frame)
    keys = {"nox_mae", "nox_rmse", "nox_r2", "co_mae", "co_r2"}
    assert set(out) == keys | {f"{k}_online" for k in keys}
    # replay by hand with the serving corrector: identical
    x = frame[list(pems.INPUTS)].to_numpy()
    static = fitted.model.static(x)
    c = pems.Corrector.for_target("NOX")
    z = fitted.model.terms("NOX", x, static["NOX"])
    state, got = None, []
    for t in range(len(x)):
        if t >= pems.DELAY_ROWS:
            i = t - pems.DELAY_ROWS
            state, _ = c.learn(state, z[i], float(static["NOX"][i]), float(frame.NOX.iloc[i]))
        got.append(c.corrected(state, z[t : t + 1], static["NOX"][t : t + 1])[0])
    replayed = pems.replay(fitted.model, x, {"NOX": frame.NOX.to_numpy()})["NOX"]
    assert np.allclose(replayed, got)
    # nothing is known for the first DELAY_ROWS rows: static values
    assert np.allclose(replayed[: pems.DELAY_ROWS], static["NOX"][: pems.DELAY_ROWS])


def test_fit_needs_two_years() -> None:
    with pytest.raises(ValueError, match="2 years"):
        pems.fit(turbine_frame(rows_per_year=300, years=(2014,)))


# -- level rule ---------------------------------------------------------------------------------
LIMITS = AssetLimits(nox_limit_mg_m3=80.0, co_limit_mg_m3=50.0, alerte_fraction=0.9)


@pytest.mark.parametrize(
    ("nox", "co", "level"),
    [
        (71.99, 1.0, Level.NORMAL),  # just below 90 % of 80
        (72.0, 1.0, Level.ALERTE),  # at the margin
        (79.99, 1.0, Level.ALERTE),
        (80.0, 1.0, Level.ALERTE),  # at the limit: not above it
        (80.01, 1.0, Level.CRITIQUE),  # above the limit
        (10.0, 45.0, Level.ALERTE),  # CO counts too
        (10.0, 50.5, Level.CRITIQUE),
        (75.0, 50.5, Level.CRITIQUE),  # the worst of the two
    ],
)
def test_level_boundaries(nox: float, co: float, level: Level) -> None:
    got, detail = level_of(nox, co, LIMITS)
    assert got is level
    assert detail.unit == "mg/m3" and detail.message
    if level is Level.CRITIQUE:
        assert detail.threshold in (80.0, 50.0)


def test_defaults_and_per_asset_configuration(tmp_path: Path) -> None:
    assert AssetLimits().model_dump() == {
        "nox_limit_mg_m3": 100.0, "co_limit_mg_m3": 100.0, "alerte_fraction": 0.9,
    }  # fmt: skip
    cfg = tmp_path / "assets.json"
    cfg.write_text(json.dumps({"turbine-nox": {"GT7": {"nox_limit_mg_m3": 70}}}))
    svc = TurbineNoxService(VigieSettings(asset_config=cfg, var_dir=tmp_path))
    assert svc.limits_for("GT7").nox_limit_mg_m3 == 70.0
    assert svc.limits_for("GT7").alerte_fraction == 0.9
    assert svc.limits_for("other").nox_limit_mg_m3 == 100.0
    cfg.write_text(json.dumps({"turbine-nox": {"GT7": {"alerte_fraction": 1.5}}}))
    with pytest.raises(ConfigError):
        TurbineNoxService(VigieSettings(asset_config=cfg, var_dir=tmp_path))
