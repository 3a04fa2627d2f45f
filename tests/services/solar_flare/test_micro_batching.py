"""solar-flare under micro-batching (``vigie.serve.scoring.score_calls``): its days are
independent rows, so the runtime scores several calls' days with one model call; each call gets
what ``score_call`` gives it alone, a failing call's 422 stays in its slot."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.solar_flare.conftest import SERVICE, simulation
from vigie.contract.batch import Batch, Scores
from vigie.contract.errors import Unprocessable
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import SERVING_ARTIFACT, ModelStore
from vigie.serve.scoring import score_call, score_calls
from vigie.settings import VigieSettings
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare.service import FlareDay, SolarFlareService

# ONNX Runtime computes a float64 Sigmoid vectorised over several rows and scalar for one, so a
# probability may differ in its last bit between a call of one row and the same row among
# more; the items hold probabilities rounded to 6 decimals, equal but for that.
LAST_BIT = 1e-15


@pytest.fixture(scope="module", params=["serving", "joblib"])
def service(
    request: pytest.FixtureRequest, trained_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> SolarFlareService:
    """Bound to the serving artifact (compiled) or to the joblib model, with a sensitive asset."""
    config = tmp_path_factory.mktemp("solar-batch") / "assets.json"
    sensitive = {"alerte_probability_m_or_above": 0.01, "critique_probability_x": 0.02}
    config.write_text(json.dumps({SERVICE: {"DESK-2": sensitive}}))
    svc = SolarFlareService(VigieSettings(asset_config=config))
    store = ModelStore(trained_models)
    if request.param == "serving":
        loaded = store.load_current(SERVICE, lean=True)
        assert loaded.path.name == SERVING_ARTIFACT
    else:
        loaded = store.load_current(SERVICE, compiled=False)
    svc.bind(loaded)
    compiled = [isinstance(e.base if isinstance(e, md.PlattCalibrated) else e, CompiledPredictor)
                for e in svc.model.model.estimators.values()]  # fmt: skip
    assert compiled == [request.param == "serving"] * len(md.KEYS)
    return svc


def days(indices: range | list[int], raw: bool = False) -> list[FlareDay]:
    sim = simulation()
    return [
        FlareDay.model_validate(
            {"timestamp": sim.timestamp(i)}
            | ({"raw": sim.raw_json(i)} if raw else {"summary": sim.summary_json(i)})
        )
        for i in indices
    ]


def inconsistent(indices: range) -> list[FlareDay]:
    """Days one of which has a summary no real day can have (windows that do not nest)."""
    sim = simulation()
    rows: list[dict[str, Any]] = [
        {"timestamp": sim.timestamp(i), "summary": sim.summary_json(i)} for i in indices
    ]
    rows[1]["summary"]["n_C_flares_last_27d"] = rows[1]["summary"]["n_C_flares_last_7d"] + 10
    rows[1]["summary"]["n_C_flares_last_3d"] = rows[1]["summary"]["n_C_flares_last_7d"] + 1
    return [FlareDay.model_validate(r) for r in rows]


def outside_window(index: int) -> list[FlareDay]:
    """A raw day with a flare outside its 27-day window: a 422."""
    sim = simulation()
    raw = sim.raw_json(index)
    raw["flares"].append({"goes_class": "C1.0", "peak_time": "2001-01-01T00:00:00Z"})
    return [FlareDay.model_validate({"timestamp": sim.timestamp(index), "raw": raw})]


def same(got: Any, expected: Any, where: str = "") -> None:
    """``got == expected``, but floats may differ by :data:`LAST_BIT`."""
    if isinstance(expected, float) and isinstance(got, float):
        assert abs(got - expected) <= LAST_BIT, (where, got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), (where, got, expected)
        for key, value in expected.items():
            same(got[key], value, f"{where}.{key}")
    elif isinstance(expected, list | tuple | range):
        assert len(got) == len(expected), (where, got)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            same(g, e, f"{where}[{i}]")
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        assert type(got) is type(expected), (where, got, expected)
        for f in dataclasses.fields(expected):
            same(getattr(got, f.name), getattr(expected, f.name), f"{where}.{f.name}")
    else:
        assert got == expected, (where, got, expected)


def assert_calls_equal_score_call(
    service: SolarFlareService, calls: list[tuple[str, list[FlareDay]]]
) -> list[Scores | Exception]:
    """``score_calls`` is, slot by slot, what ``score_call`` gives (or raises) per call: the
    items, levels, forecast points and the explanation of every prediction."""
    batched = score_calls(service, [Batch(a, m) for a, m in calls])
    assert len(batched) == len(calls)
    for i, ((asset_id, measurements), got) in enumerate(zip(calls, batched, strict=True)):
        try:
            expected = score_call(service, Batch(asset_id, measurements))
        except Exception as exc:
            assert type(got) is type(exc), (i, got, exc)
            assert str(got) == str(exc)
            assert getattr(got, "details", None) == getattr(exc, "details", None)
            continue
        assert isinstance(got, Scores), (i, got)
        same(got.items, expected.items, f"call {i}.items")
        assert list(got.levels) == list(expected.levels)
        same(got.points, expected.points, f"call {i}.points")
        for row in range(len(measurements)):
            same(got.explain(row), expected.explain(row), f"call {i}.explain({row})")
    return batched


def test_single_day_calls_equal_score_call(service: SolarFlareService) -> None:
    calls = [("SUN", days([i])) for i in range(100, 108)]
    results = assert_calls_equal_score_call(service, calls)
    assert all(isinstance(r, Scores) and len(r.items) == 1 for r in results)


def test_failing_calls_get_their_422_and_the_others_their_items(
    service: SolarFlareService,
) -> None:
    calls = [
        ("SUN", days([200])),
        ("DESK-2", days(range(201, 231))),  # other thresholds
        ("SUN", inconsistent(range(240, 244))),  # in the middle
        ("SUN", days([250, 251, 252], raw=True)),  # raw histories
        ("SUN", outside_window(260)),
        ("DESK-2", days([300])),
        ("SUN", days(range(400, 500))),
    ]
    results = assert_calls_equal_score_call(service, calls)
    assert isinstance(results[2], Unprocessable) and isinstance(results[4], Unprocessable)
    assert [len(r.items) for r in results if isinstance(r, Scores)] == [1, 30, 3, 1, 100]
    # the sensitive asset's thresholds, not the default ones, make its levels
    sensitive = results[1]
    assert isinstance(sensitive, Scores)
    assert {sensitive.explain(i).threshold for i in range(30)} <= {0.01, 0.02}
    default = results[0]
    assert isinstance(default, Scores)
    assert default.explain(0).threshold not in {0.01, 0.02}


def test_only_failing_calls(service: SolarFlareService) -> None:
    calls = [("SUN", inconsistent(range(30, 33))), ("SUN", outside_window(40))]
    results = assert_calls_equal_score_call(service, calls)
    assert all(isinstance(r, Unprocessable) for r in results)
    assert score_calls(service, []) == []


def test_one_model_call_for_the_whole_batch(
    service: SolarFlareService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    probabilities = md.probabilities

    def counting(model: object, x: Any) -> Any:
        seen.append(len(x))
        return probabilities(model, x)

    monkeypatch.setattr(md, "probabilities", counting)
    calls = [Batch("SUN", days([i])) for i in range(100, 108)]
    calls.insert(4, Batch("SUN", inconsistent(range(40, 43))))
    results = score_calls(service, calls)
    assert seen == [8]  # the 8 valid single-day calls, in one call; the bad one not at all
    assert isinstance(results[4], Unprocessable)


def test_a_failing_model_call_falls_back_to_one_call_each(
    service: SolarFlareService, monkeypatch: pytest.MonkeyPatch
) -> None:
    features_matrix = ft.features_matrix

    def refusing_batches(values: Any) -> Any:
        if len(values) > 1:
            raise ValueError("joint call refused")
        return features_matrix(values)

    calls = [("SUN", days([i])) for i in range(100, 104)]
    expected = [score_call(service, Batch(a, m)) for a, m in calls]
    monkeypatch.setattr(ft, "features_matrix", refusing_batches)
    results = score_calls(service, [Batch(a, m) for a, m in calls])
    for got, want in zip(results, expected, strict=True):
        assert isinstance(got, Scores)
        assert got.items == want.items and list(got.levels) == list(want.levels)


def test_an_unbound_service_fails_every_call_as_score_call_does() -> None:
    svc = SolarFlareService(VigieSettings(asset_config=None))
    calls = [("SUN", days([100])), ("SUN", inconsistent(range(30, 33)))]
    results = assert_calls_equal_score_call(svc, calls)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], Unprocessable)


def test_probabilities_do_not_depend_on_the_other_rows(service: SolarFlareService) -> None:
    x = ft.features(simulation().table)
    together = md.probabilities(service.model.model, x)
    alone = [md.probabilities(service.model.model, x[i : i + 1]) for i in range(50)]
    for key in md.KEYS:
        joined = np.concatenate([a[key] for a in alone])
        assert np.abs(together[key][:50] - joined).max() <= LAST_BIT


def test_infer_does_not_read_the_asset(service: SolarFlareService) -> None:
    """What ``rows_independent`` promises: the model call is the same whatever the asset (the
    runtime's joint batch has none); thresholds only come in with ``present``."""
    assert service.rows_independent
    rows = days(range(300, 340))
    a = service.infer(Batch("SUN", rows))
    b = service.infer(Batch("", rows))  # as the runtime joins calls
    assert all(np.array_equal(a[k], b[k]) for k in md.KEYS)
