"""gamma-classifier's scoring in-process (``score_call``): one numpy pass for the checks and the
features, one model call; the same items and errors as event by event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.gamma_classifier.conftest import SERVICE
from tests.services.gamma_classifier.synthetic import COLUMNS, events, gamma_frame
from vigie.contract.batch import Batch
from vigie.contract.errors import Unprocessable, field_error
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.service import HORIZON, GammaClassifierService, GammaEvent

FRAME = gamma_frame(300, seed=17)


def parse(rows: list[dict[str, Any]]) -> list[GammaEvent]:
    return [GammaEvent.model_validate(e) for e in rows]


def reference_details(batch: list[GammaEvent]) -> list[dict[str, Any]]:
    """The 422 details as the event-by-event check wrote them."""
    details = []
    for i, e in enumerate(batch):
        if e.fWidth > e.fLength:
            details.append(
                field_error(
                    ("body", "measurements", i, "fWidth"),
                    f"the minor axis fWidth ({e.fWidth} mm) exceeds the major axis fLength "
                    f"({e.fLength} mm)",
                    "width_above_length",
                )
            )
        if e.fConc1 > e.fConc:
            details.append(
                field_error(
                    ("body", "measurements", i, "fConc1"),
                    f"fConc1 ({e.fConc1}, highest pixel) exceeds fConc ({e.fConc}, two highest "
                    "pixels)",
                    "conc1_above_conc",
                )
            )
    return details


def test_inconsistent_events_are_all_named_in_order() -> None:
    rows = events(FRAME[COLUMNS].to_dict("records")[:40])
    rows[3]["fWidth"] = rows[3]["fLength"] + 1.0
    rows[7]["fConc1"] = min(1.0, rows[7]["fConc"] + 0.05)
    rows[9].update(fWidth=rows[9]["fLength"] * 2, fConc1=min(1.0, rows[9]["fConc"] + 0.01))
    rows[12]["fWidth"] = rows[12]["fLength"]  # equal is fine
    batch = parse(rows)
    service = GammaClassifierService(VigieSettings(asset_config=None))  # no model: checks only
    with pytest.raises(Unprocessable) as err:
        score_call(service, Batch("MAGIC-1", batch))
    assert err.value.details == reference_details(batch)
    assert len(err.value.details) == 4
    assert (
        str(err.value) == f"{err.value.details[0]['field']}: {err.value.details[0]['message']}"
        " (and 3 more)"
    )
    service.check(Batch("MAGIC-1", parse(events(FRAME[COLUMNS].to_dict("records")))))


def test_items_are_the_model_per_event_with_one_point_each(trained_models: Path) -> None:
    service = GammaClassifierService(VigieSettings(asset_config=None))
    service.bind(ModelStore(trained_models).load_current(SERVICE))
    batch = parse(events(FRAME[COLUMNS].to_dict("records")))
    scores = score_call(service, Batch("MAGIC-1", batch))
    expected = clf.p_gamma(service.model.model, FRAME[COLUMNS].to_numpy()).tolist()
    assert service.rules is not None
    cut = service.rules.for_asset("MAGIC-1").cut.threshold
    assert [i["p_gamma"] for i in scores.items] == expected
    assert [i["class"] for i in scores.items] == [
        "gamma" if p >= cut else "hadron" for p in expected
    ]
    assert {i["probability_threshold"] for i in scores.items} == {cut}
    # one prediction per event, about its own row and time (the runtime logs that row with it)
    assert scores.rows is None and scores.times is None
    points = scores.points
    assert points is not None and points.target == "is_gamma"
    assert list(points.row) == list(range(len(batch))) and set(points.horizon) == {HORIZON}
    assert list(points.time) == [e.timestamp for e in batch] and list(points.value) == expected
    assert len(set(scores.levels)) == 1  # the batch's level
    assert scores.summary is not None and scores.summary.timestamp == max(
        e.timestamp for e in batch
    )
    one = score_call(service, Batch("MAGIC-1", batch[5:6]))
    assert one.items[0]["p_gamma"] == pytest.approx(expected[5], abs=1e-12)
    assert one.points is not None and np.isclose(one.points.value[0], expected[5])
