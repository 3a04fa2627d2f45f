"""gamma-classifier under micro-batching (``score_calls``): every call's events through one
model call, each call's result what ``score_call`` gives it alone, a failing call's 422 in its
slot only. The service declares ``rows_independent``; these tests hold it to that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.gamma_classifier.conftest import SERVICE
from tests.services.gamma_classifier.synthetic import COLUMNS, events, gamma_frame
from tests.support.micro_batching import assert_joint_equals_alone, scores_data
from vigie.contract.batch import Batch, Scores
from vigie.contract.errors import Unprocessable
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import SERVING_ARTIFACT, ModelStore
from vigie.serve.scoring import score_call, score_calls
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.service import GammaClassifierService, GammaEvent

# ONNX Runtime computes a float64 Sigmoid vectorised over several rows and scalar for one, so a
# probability (gradient boosting, and a soft vote with it) may differ in its last bit between
# a call of one row and the same row within more rows; a request of several events already
# varies so with its size. Everything else (levels, classes, counts, messages) is equal.
LAST_BIT = 1e-15

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


def batch(asset: str, rows: list[dict[str, Any]]) -> Batch[GammaEvent]:
    return Batch(asset, [GammaEvent.model_validate(e) for e in events(rows)])


def inconsistent(asset: str, rows: list[dict[str, Any]]) -> Batch[GammaEvent]:
    """Events one of which has its width above its length: a 422."""
    broken = [dict(r) for r in rows]
    broken[1]["fWidth"] = broken[1]["fLength"] + 5.0
    return batch(asset, broken)


def test_the_service_declares_independent_rows() -> None:
    assert GammaClassifierService.rows_independent


def test_single_event_calls_equal_score_call(service: GammaClassifierService) -> None:
    results = assert_joint_equals_alone(
        service, [batch("MAGIC-1", [row]) for row in ROWS[:8]], LAST_BIT
    )
    assert all(isinstance(r, Scores) and len(r.items) == 1 for r in results)


def test_a_failing_call_gets_its_422_and_the_others_their_items(
    service: GammaClassifierService,
) -> None:
    calls = [
        batch("MAGIC-1", ROWS[0:1]),
        batch("STRICT-1", ROWS[1:30]),  # another cut, and a batch significance of 29 events
        inconsistent("MAGIC-1", ROWS[30:34]),  # in the middle
        batch("MAGIC-2", ROWS[34:35]),
        batch("STRICT-1", ROWS[35:36]),
        batch("MAGIC-1", ROWS[36:136]),
    ]
    results = assert_joint_equals_alone(service, calls, LAST_BIT)
    assert isinstance(results[2], Unprocessable)
    assert [d["field"] for d in results[2].details] == ["body.measurements.1.fWidth"]
    assert [len(r.items) for r in results if isinstance(r, Scores)] == [1, 29, 1, 1, 100]
    # the strict asset's cut is higher: its threshold, not the default one, is in its items
    strict, default = results[1], results[0]
    assert isinstance(strict, Scores) and isinstance(default, Scores)
    assert strict.items[0]["probability_threshold"] > default.items[0]["probability_threshold"]
    # each call's summary counts its own events only
    for r, n in zip([results[i] for i in (0, 1, 3, 4, 5)], [1, 29, 1, 1, 100], strict=True):
        assert isinstance(r, Scores) and r.summary is not None
        assert r.summary.body["events"] == n


def test_only_failing_calls(service: GammaClassifierService) -> None:
    calls = [inconsistent("MAGIC-1", ROWS[:3]), inconsistent("MAGIC-1", ROWS[3:6])]
    results = assert_joint_equals_alone(service, calls, LAST_BIT)
    assert all(isinstance(r, Unprocessable) for r in results)
    assert score_calls(service, []) == []


def test_one_model_call_for_the_whole_batch(
    service: GammaClassifierService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    p_gamma = clf.p_gamma

    def counting(model: object, values: Any) -> Any:
        seen.append(len(values))
        return p_gamma(model, values)

    monkeypatch.setattr(clf, "p_gamma", counting)
    calls = [batch("MAGIC-1", ROWS[i : i + 1]) for i in range(8)]
    calls.insert(4, inconsistent("MAGIC-1", ROWS[8:11]))
    results = score_calls(service, calls)
    assert seen == [8]  # the 8 valid single-event calls, in one call; the bad one not at all
    assert isinstance(results[4], Unprocessable)


def test_a_failing_model_call_falls_back_to_one_call_each(
    service: GammaClassifierService, monkeypatch: pytest.MonkeyPatch
) -> None:
    p_gamma = clf.p_gamma

    def refusing_batches(model: object, values: Any) -> Any:
        if len(values) > 1:
            raise ValueError("joint call refused")
        return p_gamma(model, values)

    calls = [batch("MAGIC-1", ROWS[i : i + 1]) for i in range(4)]
    expected = [scores_data(score_call(service, b)) for b in calls]
    monkeypatch.setattr(clf, "p_gamma", refusing_batches)
    got = score_calls(service, calls)
    assert [scores_data(r) for r in got if isinstance(r, Scores)] == expected


def test_an_unbound_service_fails_every_call_as_score_call_does() -> None:
    svc = GammaClassifierService(VigieSettings(asset_config=None))
    calls = [batch("MAGIC-1", ROWS[:1]), inconsistent("MAGIC-1", ROWS[:3])]
    results = assert_joint_equals_alone(svc, calls, LAST_BIT)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], Unprocessable)


def test_probabilities_do_not_depend_on_the_other_rows_nor_the_asset(
    service: GammaClassifierService,
) -> None:
    values = np.array([[r[c] for c in COLUMNS] for r in ROWS], dtype=np.float64)
    together = clf.p_gamma(service.model.model, values)
    alone = np.concatenate([clf.p_gamma(service.model.model, values[i : i + 1]) for i in range(50)])
    assert np.abs(together[:50] - alone).max() <= LAST_BIT
    inferred = [service.infer(batch(a, ROWS))["p_gamma"] for a in ("", "MAGIC-1", "STRICT-1")]
    assert all(np.array_equal(inferred[0], p) for p in inferred)
    np.testing.assert_array_equal(inferred[0], together)
