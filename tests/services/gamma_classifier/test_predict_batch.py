"""gamma-classifier's predict_batch (micro-batching): every call's events through one model call,
each call's result exactly what predict gives it, a failing call's 422 in its slot only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.batching import LAST_BIT, assert_batch_equals_predict
from tests.services.gamma_classifier.conftest import SERVICE
from tests.services.gamma_classifier.synthetic import COLUMNS, events, gamma_frame
from vigie.contract.errors import Unprocessable
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import SERVING_ARTIFACT, ModelStore
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.service import GammaClassifierService, GammaEvent

ROWS: list[dict[str, Any]] = [  # not the training seed
    {str(k): v for k, v in row.items()}
    for row in gamma_frame(200, seed=7)[COLUMNS].to_dict("records")
]


@pytest.fixture(scope="module", params=["serving", "joblib"])
def service(
    request: pytest.FixtureRequest, trained_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> GammaClassifierService:
    """Bound to the serving artifact (compiled) or to the joblib model, with a strict asset."""
    config = tmp_path_factory.mktemp("gamma-batch") / "assets.json"
    config.write_text(json.dumps({SERVICE: {"STRICT-1": {"hadron_fpr": 0.01}}}))
    svc = GammaClassifierService(VigieSettings(asset_config=config))
    store = ModelStore(trained_models)
    if request.param == "serving":
        loaded = store.load_current(SERVICE, lean=True)
        assert loaded.path.name == SERVING_ARTIFACT
    else:
        loaded = store.load_current(SERVICE, compiled=False)
    svc.bind(loaded)
    compiled = isinstance(svc.model.model.estimator, CompiledPredictor)
    assert compiled == (request.param == "serving")
    return svc


def batch(rows: list[dict[str, Any]], offset: int = 0) -> list[GammaEvent]:
    return [GammaEvent.model_validate(e) for e in events(rows)[offset:]]


def inconsistent(rows: list[dict[str, Any]]) -> list[GammaEvent]:
    """Events one of which has its width above its length: a 422."""
    broken = [dict(r) for r in rows]
    broken[1]["fWidth"] = broken[1]["fLength"] + 5.0
    return batch(broken)


def test_single_event_calls_equal_predict(service: GammaClassifierService) -> None:
    calls = [("MAGIC-1", batch([row])) for row in ROWS[:8]]
    results = assert_batch_equals_predict(service, calls)
    assert all(isinstance(r, list) and len(r) == 1 for r in results)


def test_a_failing_call_gets_its_422_and_the_others_their_items(
    service: GammaClassifierService,
) -> None:
    calls = [
        ("MAGIC-1", batch(ROWS[0:1])),
        ("STRICT-1", batch(ROWS[1:30])),  # another cut, and a batch significance of 29 events
        ("MAGIC-1", inconsistent(ROWS[30:34])),  # in the middle
        ("MAGIC-2", batch(ROWS[34:35])),
        ("STRICT-1", batch(ROWS[35:36])),
        ("MAGIC-1", batch(ROWS[36:136])),
    ]
    results = assert_batch_equals_predict(service, calls)
    assert isinstance(results[2], Unprocessable)
    assert [d["field"] for d in results[2].details] == ["body.measurements.1.fWidth"]
    assert [len(r) for r in results if isinstance(r, list)] == [1, 29, 1, 1, 100]
    # the strict asset's cut is higher: its threshold, not the default one, is in its items
    strict, default = results[1], results[0]
    assert isinstance(strict, list) and isinstance(default, list)
    assert strict[0].body["probability_threshold"] > default[0].body["probability_threshold"]


def test_only_failing_calls(service: GammaClassifierService) -> None:
    calls = [("MAGIC-1", inconsistent(ROWS[:3])), ("MAGIC-1", inconsistent(ROWS[3:6]))]
    results = assert_batch_equals_predict(service, calls)
    assert all(isinstance(r, Unprocessable) for r in results)
    assert service.predict_batch([]) == []


def test_one_model_call_for_the_whole_batch(
    service: GammaClassifierService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    p_gamma = clf.p_gamma

    def counting(model: object, values: Any) -> Any:
        seen.append(len(values))
        return p_gamma(model, values)

    monkeypatch.setattr(clf, "p_gamma", counting)
    calls = [("MAGIC-1", batch(ROWS[i : i + 1])) for i in range(8)]
    calls.insert(4, ("MAGIC-1", inconsistent(ROWS[8:11])))
    results = service.predict_batch(calls)
    assert seen == [8]  # the 8 valid single-event calls, in one call; the bad one not at all
    assert isinstance(results[4], Unprocessable)


def test_a_failing_model_call_falls_back_to_predict_per_call(
    service: GammaClassifierService, monkeypatch: pytest.MonkeyPatch
) -> None:
    p_gamma = clf.p_gamma

    def refusing_batches(model: object, values: Any) -> Any:
        if len(values) > 1:
            raise ValueError("joint call refused")
        return p_gamma(model, values)

    calls = [("MAGIC-1", batch(ROWS[i : i + 1])) for i in range(4)]
    expected = [service.predict(a, m) for a, m in calls]
    monkeypatch.setattr(clf, "p_gamma", refusing_batches)
    assert service.predict_batch(calls) == expected


def test_an_unbound_service_fails_every_call_as_predict_does() -> None:
    svc = GammaClassifierService(VigieSettings(asset_config=None))
    calls = [("MAGIC-1", batch(ROWS[:1])), ("MAGIC-1", inconsistent(ROWS[:3]))]
    results = assert_batch_equals_predict(svc, calls)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], Unprocessable)


def test_probabilities_do_not_depend_on_the_other_rows(service: GammaClassifierService) -> None:
    values = np.array([[r[c] for c in COLUMNS] for r in ROWS], dtype=np.float64)
    together = clf.p_gamma(service.model.model, values)
    alone = np.concatenate([clf.p_gamma(service.model.model, values[i : i + 1]) for i in range(50)])
    assert np.abs(together[:50] - alone).max() <= LAST_BIT  # see tests.services.batching
