"""turbine-nox's online corrector: what it learns, what it ignores, its memory; and its batched
learning (``learn_many``, what a request's analyser values go through) equal to learning value
by value, bit for bit."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from vigie_services.turbine_nox import pems
from vigie_services.turbine_nox.corrector import Corrector

K = 2 + len(pems.INPUTS)
Z = np.r_[1.0, np.zeros(K - 1)]  # terms of an average operating point


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.0, n)


def learn_bias(corrector: Corrector, bias: float, n: int, state=None, seed: int = 0):  # type: ignore[no-untyped-def]
    for i, e in enumerate(_noise(n, seed)):
        state, _ = corrector.learn(state, Z, 60.0, 60.0 + bias + e, key=f"{seed}-{i}")
    return state


def test_corrector_learns_a_bias_and_its_memory_is_the_documented_half_life() -> None:
    c = Corrector.for_target("NOX")
    assert c.half_life == pytest.approx(69.0, abs=0.5)
    state = learn_bias(c, -8.0, 200)
    assert c.correction(state, Z[None, :])[0] == pytest.approx(-8.0, abs=0.6)
    # the bias goes away: after ~3 half-lives the old one weighs little
    state = learn_bias(c, 0.0, 210, state, seed=1)
    assert abs(c.correction(state, Z[None, :])[0]) < 1.5
    assert c.correction(None, Z[None, :])[0] == 0.0


def test_correction_is_bounded() -> None:
    c = Corrector.for_target("NOX")
    state = None
    for i in range(300):  # a huge but sustained offset: learned, but capped
        state, _ = c.learn(state, Z, 60.0, 160.0 + (i % 7), key=str(i))
    assert c.correction(state, Z[None, :])[0] == pytest.approx(c.max_correction)
    assert c.corrected(state, Z[None, :], np.array([0.0]))[0] >= 0.0


def test_a_stuck_analyser_does_not_drag_the_correction() -> None:
    c = Corrector.for_target("NOX")
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
    c = Corrector.for_target("NOX")
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
    c = Corrector.for_target("NOX")
    state, why = c.learn(None, Z, 60.0, 50.0, key="2015-01-01T00:00:00+00:00")
    assert why == "learned"
    learned = state["learned"]
    state, why = c.learn(state, Z, 60.0, 51.0, key="2015-01-01T00:00:00+00:00")
    assert why == "duplicate" and state["learned"] == learned


def test_state_is_json() -> None:
    c = Corrector.for_target("CO")
    state = learn_bias(c, 1.0, 30)
    assert json.loads(json.dumps(state)) == state


# ------------------------------------------------------------------------------- learn_many


def stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Terms, static values, analyser values and keys with outliers, a stuck analyser, a
    sustained shift and re-sent timestamps."""
    rng = np.random.default_rng(seed)
    z = np.column_stack([np.ones(n), rng.normal(size=(n, K - 1))])
    static = rng.uniform(40, 80, n)
    measured = static + 5 + rng.normal(0, 2, n)
    outliers = rng.random(n) < 0.05
    measured[outliers] += rng.choice([-1, 1], outliers.sum()) * rng.uniform(30, 80, outliers.sum())
    if n > 60:
        s = int(rng.integers(0, n - 20))
        measured[s : s + 5] = measured[s]  # stuck
        s = int(rng.integers(0, n - 30))
        measured[s : s + 20] += 60  # a sustained shift: rejected 11 times, then learned
    keys = [f"t{rng.integers(0, n)}" for _ in range(n)]  # some timestamps come twice
    return z, static, np.clip(np.round(measured, 3), 0, 500), keys


def warm_state(corrector: Corrector) -> dict[str, Any]:
    z, static, measured, _ = stream(40, 99)
    state = None
    for i in range(40):
        state, _ = corrector.learn(state, z[i], float(static[i]), float(measured[i]), f"w{i}")
    assert state is not None
    return state


@pytest.mark.parametrize(
    ("n", "seed", "warm", "with_keys"),
    [(1, 0, False, True), (1, 1, True, True), (7, 2, True, False), (150, 3, False, True),
     (400, 4, True, True), (400, 5, False, False), (900, 6, True, True)],
)  # fmt: skip
@pytest.mark.parametrize("target", pems.TARGETS)
def test_learn_many_equals_learn_value_by_value_bit_for_bit(
    n: int, seed: int, warm: bool, with_keys: bool, target: str
) -> None:
    c = Corrector.for_target(target)
    z, static, measured, keys = stream(n, seed)
    start = warm_state(c) if warm else None
    expected, outcomes = copy.deepcopy(start), []
    for i in range(n):
        key = keys[i] if with_keys else None
        expected, outcome = c.learn(expected, z[i], float(static[i]), float(measured[i]), key)
        outcomes.append(outcome)
    got, got_outcomes = c.learn_many(
        copy.deepcopy(start), z, static, measured, keys if with_keys else None
    )
    assert got_outcomes == outcomes
    assert json.dumps(got) == json.dumps(expected)  # every float, the key order too
    if n >= 400:
        assert {"learned", "outlier", "stuck"} <= set(outcomes)


def test_learn_many_of_nothing_new_keeps_the_state() -> None:
    c = Corrector.for_target("NOX")
    state = warm_state(c)
    before = json.dumps(state)
    z, static, measured, _ = stream(3, 7)
    _, outcomes = c.learn_many(state, z, static, measured, state["seen"][-3:])
    assert outcomes == ["duplicate"] * 3
    after = json.loads(before)
    after["ignored"]["duplicate"] += 3
    assert state == after
