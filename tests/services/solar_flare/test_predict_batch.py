"""solar-flare's predict_batch (micro-batching): every call's days through one model call, each
call's result exactly what predict gives it, a failing call's 422 in its slot only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.batching import LAST_BIT, assert_batch_equals_predict
from tests.services.solar_flare.conftest import SERVICE, simulation
from vigie.contract.errors import Unprocessable
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import SERVING_ARTIFACT, ModelStore
from vigie.settings import VigieSettings
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.service import FlareDay, SolarFlareService


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


def test_single_day_calls_equal_predict(service: SolarFlareService) -> None:
    calls = [("SUN", days([i])) for i in range(100, 108)]
    results = assert_batch_equals_predict(service, calls)
    assert all(isinstance(r, list) and len(r) == 1 for r in results)


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
    results = assert_batch_equals_predict(service, calls)
    assert isinstance(results[2], Unprocessable) and isinstance(results[4], Unprocessable)
    assert [len(r) for r in results if isinstance(r, list)] == [1, 30, 3, 1, 100]
    # the sensitive asset's thresholds, not the default ones, make its levels
    sensitive = results[1]
    assert isinstance(sensitive, list)
    assert {s.detail.threshold for s in sensitive} <= {0.01, 0.02}


def test_only_failing_calls(service: SolarFlareService) -> None:
    calls = [("SUN", inconsistent(range(30, 33))), ("SUN", outside_window(40))]
    results = assert_batch_equals_predict(service, calls)
    assert all(isinstance(r, Unprocessable) for r in results)
    assert service.predict_batch([]) == []


def test_one_model_call_for_the_whole_batch(
    service: SolarFlareService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    probabilities = md.probabilities

    def counting(model: object, x: Any) -> Any:
        seen.append(len(x))
        return probabilities(model, x)

    monkeypatch.setattr(md, "probabilities", counting)
    calls = [("SUN", days([i])) for i in range(100, 108)]
    calls.insert(4, ("SUN", inconsistent(range(40, 43))))
    results = service.predict_batch(calls)
    assert seen == [8]  # the 8 valid single-day calls, in one call; the bad one not at all
    assert isinstance(results[4], Unprocessable)


def test_a_failing_model_call_falls_back_to_predict_per_call(
    service: SolarFlareService, monkeypatch: pytest.MonkeyPatch
) -> None:
    features_matrix = sm.features_matrix

    def refusing_batches(values: Any) -> Any:
        if len(values) > 1:
            raise ValueError("joint call refused")
        return features_matrix(values)

    calls = [("SUN", days([i])) for i in range(100, 104)]
    expected = [service.predict(a, m) for a, m in calls]
    monkeypatch.setattr(sm, "features_matrix", refusing_batches)
    assert service.predict_batch(calls) == expected


def test_an_unbound_service_fails_every_call_as_predict_does() -> None:
    svc = SolarFlareService(VigieSettings(asset_config=None))
    calls = [("SUN", days([100])), ("SUN", inconsistent(range(30, 33)))]
    results = assert_batch_equals_predict(svc, calls)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], Unprocessable)


def test_probabilities_do_not_depend_on_the_other_rows(service: SolarFlareService) -> None:
    x = sm.features(simulation().table)
    together = md.probabilities(service.model.model, x)
    alone = [md.probabilities(service.model.model, x[i : i + 1]) for i in range(50)]
    for key in md.KEYS:
        joined = np.concatenate([a[key] for a in alone])
        assert np.abs(together[key][:50] - joined).max() <= LAST_BIT  # see tests.services.batching
