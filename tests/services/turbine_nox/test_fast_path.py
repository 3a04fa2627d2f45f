"""turbine-nox's predict path: batched learning equals learning value by value (bit for bit),
the correction state is read once per request, and the items are scored with the state as it
was before the request's analyser values were learned (in-process, no server)."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import measurements, turbine_frame
from vigie.contract.levels import Level
from vigie.contract.service import LevelDetail
from vigie.io.asset_state import AssetStateStore, State, StateUnavailable
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services.turbine_nox import pems
from vigie_services.turbine_nox.service import (
    UNIT,
    AssetLimits,
    TurbineMeasurement,
    TurbineNoxService,
    level_of,
)

FRAME = turbine_frame(rows_per_year=300, years=(2015,), seed=5)
K = 2 + len(pems.INPUTS)


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


def warm_state(corrector: pems.Corrector) -> dict[str, Any]:
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
    c = pems.Corrector.for_target(target)
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
    c = pems.Corrector.for_target("NOX")
    state = warm_state(c)
    before = json.dumps(state)
    z, static, measured, _ = stream(3, 7)
    _, outcomes = c.learn_many(state, z, static, measured, state["seen"][-3:])
    assert outcomes == ["duplicate"] * 3
    after = json.loads(before)
    after["ignored"]["duplicate"] += 3
    assert state == after


# -------------------------------------------------------------------------------- level_of


def reference_level_of(nox: float, co: float, limits: AssetLimits) -> tuple[Level, LevelDetail]:
    """The level rule as it was written first (a loop over NOx and CO)."""
    worst: tuple[Level, str, float, float] | None = None
    for name, value, limit in (
        ("NOx", nox, limits.nox_limit_mg_m3),
        ("CO", co, limits.co_limit_mg_m3),
    ):
        alerte = limits.alerte_fraction * limit
        level = (
            Level.CRITIQUE if value > limit else Level.ALERTE if value >= alerte else Level.NORMAL
        )
        threshold = limit if level is Level.CRITIQUE else alerte
        if worst is None or level.rank > worst[0].rank:
            worst = (level, name, value, threshold)
    assert worst is not None
    level, name, value, threshold = worst
    if level is Level.NORMAL:
        message = f"NOx {nox:.1f} mg/m3, CO {co:.1f} mg/m3 below ALERTE"
        return level, LevelDetail(
            nox, UNIT, limits.alerte_fraction * limits.nox_limit_mg_m3, message
        )
    word = "above permit" if level is Level.CRITIQUE else "near permit, ALERTE from"
    limit = limits.nox_limit_mg_m3 if name == "NOx" else limits.co_limit_mg_m3
    message = f"{name} prediction {value:.1f} mg/m3 {word} {threshold:.1f} (permit {limit:g})"
    return level, LevelDetail(value, UNIT, threshold, message)


def test_level_of_equals_the_rule_as_first_written() -> None:
    values = [0.0, 30.0, 44.99, 45.0, 59.9, 60.0, 75.0, 89.99, 90.0, 99.99, 100.0, 100.01, 400.0]
    for limits in (
        AssetLimits(),
        AssetLimits(nox_limit_mg_m3=50, co_limit_mg_m3=60, alerte_fraction=0.75),
        AssetLimits(nox_limit_mg_m3=100, co_limit_mg_m3=100, alerte_fraction=0.5),
    ):
        for nox, co in itertools.product(values, values):
            assert level_of(nox, co, limits) == reference_level_of(nox, co, limits)


# --------------------------------------------------------------------- the state per request


class MemoryStore(AssetStateStore):
    """An AssetStateStore in memory that counts its reads and its transactions."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.gets = 0
        self.updates = 0
        self.down = False

    def get(self, asset_id: str) -> State | None:
        self.gets += 1
        if self.down:
            raise StateUnavailable("down")
        raw = self.data.get(asset_id)
        return None if raw is None else dict(orjson.loads(raw))

    def update(self, asset_id: str, change: Callable[[State | None], State]) -> State:
        self.updates += 1
        if self.down:
            raise StateUnavailable("down")
        raw = self.data.get(asset_id)
        new = change(None if raw is None else dict(orjson.loads(raw)))
        self.data[asset_id] = orjson.dumps(new)
        return new


@pytest.fixture(scope="module")
def service(trained_models: Path) -> TurbineNoxService:
    svc = TurbineNoxService(VigieSettings(asset_config=None))
    svc.bind(ModelStore(trained_models).load_current(SERVICE))
    return svc


def parse(rows: list[dict[str, Any]]) -> list[TurbineMeasurement]:
    return [TurbineMeasurement.model_validate(m) for m in rows]


def test_a_request_without_analyser_values_reads_the_state_once(
    service: TurbineNoxService,
) -> None:
    service.state = store = MemoryStore()
    items = service.predict("GT-A", parse(measurements(FRAME, slice(0, 50))))
    assert (store.gets, store.updates) == (1, 0)
    assert len(items) == 50 and items[0].body["calibration"]["status"] == "static"
    assert items[0].body["calibration"]["learning"] is None
    assert items[0].measurement == parse(measurements(FRAME, slice(0, 1)))[0].model_dump(
        mode="json"
    )


def test_analyser_values_are_learned_in_one_transaction_after_scoring(
    service: TurbineNoxService,
) -> None:
    service.state = store = MemoryStore()
    rows = measurements(FRAME, slice(0, 60), with_targets=True)
    for m in rows:
        m["NOX"] = round(m["NOX"] + 6.0, 3)
    first = service.predict("GT-B", parse(rows))
    assert (store.gets, store.updates) == (0, 1)  # read, learned and written together
    assert first[0].body["calibration"]["status"] == "static"  # scored before learning
    assert first[0].body["calibration"]["learning"] == "120 learned"
    assert all(i.body["nox_mg_m3"] == i.body["nox_static_mg_m3"] for i in first)
    later = service.predict("GT-B", parse(measurements(FRAME, slice(100, 103))))
    cal = later[0].body["calibration"]
    assert cal["status"] == "corrected" and cal["nox_values_learned"] == 60
    assert cal["nox_correction_mg_m3"] != 0.0
    # the state is what learning the values one by one gives, bit for bit
    model = service.model.model
    x = np.array([[m[c] for c in pems.INPUTS] for m in rows])
    static = model.static(x)
    for target in pems.TARGETS:
        c = service.correctors[target]
        z = model.terms(target, x, static[target])
        expected = None
        for i, m in enumerate(rows):
            expected, _ = c.learn(expected, z[i], float(static[target][i]), float(m[target]),
                                  parse([m])[0].timestamp.isoformat())  # fmt: skip
        assert json.dumps(store.get("GT-B")[target]) == json.dumps(expected)  # type: ignore[index]


def test_unreachable_state_serves_the_static_model(service: TurbineNoxService) -> None:
    service.state = store = MemoryStore()
    store.down = True
    with_values = service.predict(
        "GT-C", parse(measurements(FRAME, slice(0, 5), with_targets=True))
    )
    without = service.predict("GT-C", parse(measurements(FRAME, slice(0, 5))))
    for items in (with_values, without):
        assert {i.body["calibration"]["status"] for i in items} == {"unavailable"}
        assert all(i.body["nox_mg_m3"] == i.body["nox_static_mg_m3"] for i in items)
    assert with_values[0].body["calibration"]["learning"] == (
        "not learned: correction state unavailable"
    )
    assert without[0].body["calibration"]["learning"] is None
