"""turbine-nox's scoring in process (``score_call`` / ``score_calls``, as the runtime calls them):
the correction state is read once per call, the items are scored with the state as it was before
the call's analyser values were learned, feedback learns from the inputs stored with a
prediction, and several calls scored together answer what each answers alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import measurements, turbine_frame
from vigie.contract.batch import Batch, Scores
from vigie.io.asset_state import AssetStateStore, State, StateUnavailable
from vigie.io.feedback import MatchResult
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call, score_calls
from vigie.settings import VigieSettings
from vigie_services.turbine_nox import pems
from vigie_services.turbine_nox.service import (
    AssetLimits,
    TurbineMeasurement,
    TurbineNoxService,
    level_of,
)

FRAME = turbine_frame(rows_per_year=300, years=(2015,), seed=5)
LOW = {"nox_limit_mg_m3": 50.0, "co_limit_mg_m3": 80.0, "alerte_fraction": 0.8}


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


def make_service(models: Path, tmp: Path) -> TurbineNoxService:
    config = tmp / "assets.json"
    config.write_text(json.dumps({SERVICE: {"GT-LOW": LOW}}))
    svc = TurbineNoxService(VigieSettings(asset_config=config, var_dir=tmp))
    svc.bind(ModelStore(models).load_current(SERVICE))
    return svc


@pytest.fixture(scope="module")
def service(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> TurbineNoxService:
    return make_service(trained_models, tmp_path_factory.mktemp("nox-scoring"))


def batch(asset: str, rows: list[dict[str, Any]]) -> Batch[TurbineMeasurement]:
    return Batch(asset, [TurbineMeasurement.model_validate(m) for m in rows])


def test_a_call_without_analyser_values_reads_the_state_once(service: TurbineNoxService) -> None:
    service.state = store = MemoryStore()
    call = batch("GT-A", measurements(FRAME, slice(0, 50)))
    scores = score_call(service, call)
    assert (store.gets, store.updates) == (1, 0)
    assert len(scores.items) == len(scores.levels) == 50
    first = scores.items[0]
    assert first["calibration"]["status"] == "static" and first["calibration"]["learning"] is None
    assert "nox_residual_mg_m3" not in first and "timestamp" not in first
    static = service.model.model.static(FRAME[list(pems.INPUTS)].to_numpy()[:50])
    assert [i["nox_static_mg_m3"] for i in scores.items] == [round(v, 3) for v in static["NOX"]]
    assert first["inputs"] == {c: FRAME[c].iloc[0] for c in pems.INPUTS}
    assert first["limits"] == AssetLimits().model_dump()
    # one forecast point per row: the unrounded corrected NOx at the row's hour
    points = scores.points
    assert points is not None and (points.target, set(points.horizon)) == ("NOX", {"h0"})
    assert list(points.row) == list(range(50)) and list(points.time) == call.times
    assert [i["nox_mg_m3"] for i in scores.items] == [round(v, 3) for v in points.value]
    assert scores.times is None and scores.rows is None and scores.summary is None


def test_levels_follow_the_asset_limits_and_explain_the_row(service: TurbineNoxService) -> None:
    service.state = MemoryStore()
    rows = measurements(FRAME, slice(0, 40))
    low, default = score_call(service, batch("GT-LOW", rows)), score_call(service, batch("X", rows))
    limits = AssetLimits(**LOW)
    assert low.items[0]["limits"] == LOW
    assert low.points is not None
    for i, value in enumerate(low.points.value):
        level, detail = level_of(value, low.items[i]["co_mg_m3"], limits)
        assert low.levels[i] is level and low.items[i]["recommendation"]
        assert low.explain(i).message == detail.message and low.explain(i).value == value
    # synthetic NOx is ~50-80 mg/m3: above 0.8 x 50 everywhere, below the default ALERTE (90)
    assert {lvl.value for lvl in low.levels} <= {"ALERTE", "CRITIQUE"}
    assert {lvl.value for lvl in default.levels} == {"NORMAL"}


def test_analyser_values_are_learned_in_one_transaction_after_scoring(
    service: TurbineNoxService,
) -> None:
    service.state = store = MemoryStore()
    rows = measurements(FRAME, slice(0, 60), with_targets=True)
    for m in rows:
        m["NOX"] = round(m["NOX"] + 6.0, 3)
    first = score_call(service, batch("GT-B", rows)).items
    assert (store.gets, store.updates) == (0, 1)  # read, learned and written together
    assert first[0]["calibration"]["status"] == "static"  # scored before learning
    assert first[0]["calibration"]["learning"] == "120 learned"
    assert all(i["nox_mg_m3"] == i["nox_static_mg_m3"] for i in first)
    assert first[0]["nox_measured_mg_m3"] == rows[0]["NOX"]
    assert first[0]["nox_residual_mg_m3"] == round(rows[0]["NOX"] - first[0]["nox_mg_m3"], 3)
    later = score_call(service, batch("GT-B", measurements(FRAME, slice(100, 103)))).items
    cal = later[0]["calibration"]
    assert cal["status"] == "corrected" and cal["nox_values_learned"] == 60
    assert cal["nox_correction_mg_m3"] != 0.0
    # the state is what learning the values one by one gives, bit for bit
    model = service.model.model
    x = np.array([[m[c] for c in pems.INPUTS] for m in rows])
    static = model.static(x)
    for target in pems.TARGETS:
        c = service.recalibration.correctors[target]
        z = model.terms(target, x, static[target])
        expected = None
        for i, m in enumerate(rows):
            key = TurbineMeasurement.model_validate(m).timestamp.isoformat()
            expected, _ = c.learn(expected, z[i], float(static[target][i]), float(m[target]), key)
        assert json.dumps(store.get("GT-B")[target]) == json.dumps(expected)  # type: ignore[index]


def test_only_the_analyser_values_sent_are_learned(service: TurbineNoxService) -> None:
    service.state = store = MemoryStore()
    rows = measurements(FRAME, slice(0, 10), with_targets=True)
    for i, m in enumerate(rows):
        del m["CO" if i % 2 else "NOX"]
    items = score_call(service, batch("GT-HALF", rows)).items
    assert items[0]["calibration"]["learning"] == "10 learned"
    assert "co_measured_mg_m3" in items[0] and "nox_measured_mg_m3" not in items[0]
    assert "nox_measured_mg_m3" in items[1] and "co_measured_mg_m3" not in items[1]
    state = store.get("GT-HALF")
    assert state is not None and state["NOX"]["learned"] == state["CO"]["learned"] == 5


def test_unreachable_or_missing_state_serves_the_static_model(
    service: TurbineNoxService,
) -> None:
    down = MemoryStore()
    down.down = True
    for store in (down, None):
        service.state = store
        with_values = score_call(
            service, batch("GT-C", measurements(FRAME, slice(0, 5), with_targets=True))
        ).items
        without = score_call(service, batch("GT-C", measurements(FRAME, slice(0, 5)))).items
        for items in (with_values, without):
            assert {i["calibration"]["status"] for i in items} == {"unavailable"}
            assert all(i["nox_mg_m3"] == i["nox_static_mg_m3"] for i in items)
        assert with_values[0]["calibration"]["learning"] == (
            "not learned: correction state unavailable"
        )
        assert without[0]["calibration"]["learning"] is None


def test_a_state_learned_for_another_model_counts_as_nothing(
    service: TurbineNoxService,
) -> None:
    service.state = store = MemoryStore()
    store.data["GT-OLD"] = orjson.dumps({"model_version": "older", "NOX": {"theta": [9.0] * 11}})
    items = score_call(service, batch("GT-OLD", measurements(FRAME, slice(0, 3)))).items
    assert items[0]["calibration"]["status"] == "static"
    score_call(service, batch("GT-OLD", measurements(FRAME, slice(3, 6), with_targets=True)))
    state = store.get("GT-OLD")
    assert state is not None and state["model_version"] == service.model.version
    assert state["NOX"]["learned"] == 3


def test_feedback_learns_from_the_inputs_stored_with_the_prediction(
    service: TurbineNoxService,
) -> None:
    service.state = store = MemoryStore()
    call = batch("GT-FB", measurements(FRAME, slice(0, 20)))
    items = score_call(service, call).items
    stored = [orjson.loads(orjson.dumps(i)) for i in items]  # as the prediction log gives them
    matches = [
        MatchResult(t, "NOX", 1, round(i["nox_static_mg_m3"] - 10.0, 3), (i,))
        for t, i in zip(call.times, stored, strict=True)
    ]
    unmatched = MatchResult(call.times[0].replace(year=2013), "NOX", 0, 50.0)
    service.learn("GT-FB", [*matches, unmatched, *matches[:5]])  # five sent twice
    state = store.get("GT-FB")
    assert state is not None and set(state) == {"model_version", "NOX"}
    assert state["NOX"]["learned"] == 20 and state["NOX"]["ignored"]["duplicate"] == 5
    later = score_call(service, batch("GT-FB", measurements(FRAME, slice(0, 3)))).items
    assert later[0]["calibration"]["nox_values_learned"] == 20
    assert later[0]["calibration"]["nox_correction_mg_m3"] < -5.0


CALLS = [
    ("GT-S1", slice(0, 1), False),
    ("GT-S2", slice(1, 4), True),
    ("GT-LOW", slice(4, 5), False),
    ("GT-S1", slice(5, 10), True),
    ("GT-S2", slice(10, 11), False),
    ("GT-S1", slice(11, 13), False),
]


def calls() -> list[Batch[TurbineMeasurement]]:
    out = []
    for k, (asset, rows, with_targets) in enumerate(CALLS):
        start = f"2015-02-01T{k:02d}:00:00Z"
        out.append(batch(asset, measurements(FRAME, rows, start=start, with_targets=with_targets)))
    return out


def test_calls_scored_together_answer_what_each_answers_alone(
    service: TurbineNoxService,
) -> None:
    service.state = alone_store = MemoryStore()
    alone = [score_call(service, b) for b in calls()]
    service.state = together_store = MemoryStore()
    together = score_calls(service, calls())
    assert all(isinstance(s, Scores) for s in together)
    assert [s.items for s in together] == [s.items for s in alone]  # type: ignore[union-attr]
    assert [s.levels for s in together] == [s.levels for s in alone]  # type: ignore[union-attr]
    assert together_store.data == alone_store.data


def test_infer_needs_the_rows_only(
    trained_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``infer`` reads no asset, so calls could share one model call (``rows_independent``,
    off because a linear estimator's float32 rounding depends on the batch: see
    recalibration.model_outputs): joined, they answer the same within that rounding."""
    svc = make_service(trained_models, tmp_path)
    svc.state = alone_store = MemoryStore()
    alone = [score_call(svc, b) for b in calls()]
    monkeypatch.setattr(TurbineNoxService, "rows_independent", True)
    svc.state = MemoryStore()
    seen: list[str] = []
    infer = svc.infer

    def watched(b: Batch[TurbineMeasurement]) -> Any:
        seen.append(b.asset_id)
        return infer(b)

    monkeypatch.setattr(svc, "infer", watched)
    together = score_calls(svc, calls())
    assert seen == [""]  # one model call for every row, without an asset
    for joint, single in zip(together, alone, strict=True):
        assert isinstance(joint, Scores)
        assert joint.levels == single.levels
        for a, b in zip(joint.items, single.items, strict=True):
            assert a["calibration"]["status"] == b["calibration"]["status"]
            assert a["calibration"]["learning"] == b["calibration"]["learning"]
            assert a["nox_mg_m3"] == pytest.approx(b["nox_mg_m3"], abs=1e-3)
            assert a["co_mg_m3"] == pytest.approx(b["co_mg_m3"], abs=1e-3)
    assert isinstance(svc.state, MemoryStore)
    assert alone_store.data.keys() == svc.state.data.keys()
