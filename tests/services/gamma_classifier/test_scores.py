"""gamma-classifier's ``present`` in-process: the batch's level on every item, the summary and the
level event's explanation, at the level rule's boundaries (the designed batches of conftest)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.services.gamma_classifier.conftest import SERVICE, Boundary, Pool, asset_config
from tests.services.gamma_classifier.synthetic import START, events
from vigie.contract.batch import Batch, Scores
from vigie.contract.levels import Level
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier.service import GammaClassifierService, GammaEvent


@pytest.fixture(scope="module")
def service(
    trained_models: Path, boundary: Boundary, tmp_path_factory: pytest.TempPathFactory
) -> GammaClassifierService:
    path = tmp_path_factory.mktemp("gamma-scores") / "assets.json"
    path.write_text(json.dumps(asset_config(boundary)))
    svc = GammaClassifierService(VigieSettings(asset_config=path))
    svc.bind(ModelStore(trained_models).load_current(SERVICE, lean=True))
    return svc


def scored(
    service: GammaClassifierService, rows: list[dict[str, Any]], asset: str = "MAGIC-1"
) -> Scores:
    return score_call(service, Batch(asset, [GammaEvent.model_validate(e) for e in events(rows)]))


def designed(pool: Pool, gammas: int, hadrons: int) -> list[dict[str, Any]]:
    return pool.hadron_like[:hadrons] + pool.gamma_like[:gammas]


@pytest.mark.parametrize(
    ("asset", "which", "expected", "threshold"),
    [
        ("MAGIC-1", "k3-1", Level.NORMAL, "alerte"),
        ("MAGIC-1", "k3", Level.ALERTE, "alerte"),
        ("MAGIC-1", "k5-1", Level.ALERTE, "alerte"),
        ("MAGIC-1", "k5", Level.CRITIQUE, "critique"),
        ("EXACT-1", "k3", Level.ALERTE, "alerte"),  # at the threshold counts as reached
        ("EXACT-1", "k5", Level.CRITIQUE, "critique"),
        ("EXACT-2", "k3", Level.NORMAL, "alerte"),  # one float step above: not reached
        ("EXACT-2", "k5", Level.ALERTE, "alerte"),
    ],
)
def test_the_batch_level_and_its_explanation_at_the_boundaries(
    service: GammaClassifierService,
    pool: Pool,
    boundary: Boundary,
    asset: str,
    which: str,
    expected: Level,
    threshold: str,
) -> None:
    k = {"k3-1": boundary.k3 - 1, "k3": boundary.k3, "k5-1": boundary.k5 - 1, "k5": boundary.k5}
    gammas = k[which]
    scores = scored(service, designed(pool, gammas, boundary.hadrons), asset)
    assert list(scores.levels) == [expected] * (gammas + boundary.hadrons)
    summary = scores.summary
    assert summary is not None and summary.detail is not None
    body = summary.body
    assert body["gamma_classified"] == gammas and body["hadron_classified"] == boundary.hadrons
    assert body["significance_sigma"] == boundary.s[gammas] and body["level"] is expected
    detail = summary.detail
    assert detail.value == boundary.s[gammas] and detail.unit == "sigma"
    assert detail.threshold == body[f"{threshold}_sigma"]
    assert detail.message == body["message"]
    assert ("flaring source candidate" in detail.message) == (expected is not Level.NORMAL)
    assert f"{gammas} of {gammas + boundary.hadrons} events classified gamma" in detail.message
    assert all(scores.explain(i) == detail for i in (0, len(scores.levels) - 1))


def test_the_summary_is_dated_by_the_latest_event(
    service: GammaClassifierService, pool: Pool
) -> None:
    rows = designed(pool, 5, 30)
    batch = [GammaEvent.model_validate(e) for e in events(rows)]
    batch.reverse()  # newest first: the summary still names the latest
    scores = score_call(service, Batch("MAGIC-1", batch))
    assert scores.summary is not None
    assert scores.summary.timestamp == START + timedelta(milliseconds=len(rows) - 1)
    assert scores.times is None and scores.rows is None  # items in request order


def test_summary_body_names_the_rule_and_cut_applied(
    service: GammaClassifierService, pool: Pool
) -> None:
    assert service.rules is not None
    cut = service.rules.for_asset("STRICT-1").cut
    scores = scored(service, designed(pool, 10, 50), "STRICT-1")
    assert scores.summary is not None
    body = scores.summary.body
    assert list(body)[:11] == [
        "events", "gamma_classified", "hadron_classified", "hadron_fpr", "gamma_efficiency",
        "alpha", "estimated_hadrons", "expected_background", "excess", "estimated_gammas",
        "significance_sigma",
    ]  # fmt: skip
    assert body["probability_threshold"] == cut.threshold and body["target_hadron_fpr"] == 0.01
    assert body["hadron_fpr"] == cut.hadron_fpr and body["gamma_efficiency"] == cut.gamma_efficiency
    assert (body["alerte_sigma"], body["critique_sigma"]) == (3.0, 5.0)
    assert "Li & Ma" in body["method"] and body["recommendation"]
