"""gamma-classifier's predict path in-process: one numpy pass for the checks and the features,
one model call, one serializer call; the same items and errors as event by event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services.gamma_classifier.conftest import SERVICE
from tests.services.gamma_classifier.synthetic import COLUMNS, events, gamma_frame
from vigie.contract.errors import Unprocessable, field_error
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.service import GammaClassifierService, GammaEvent

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
    with pytest.raises(Unprocessable) as err:
        GammaClassifierService._check_consistency(batch)
    assert err.value.details == reference_details(batch)
    assert len(err.value.details) == 4
    GammaClassifierService._check_consistency(parse(events(FRAME[COLUMNS].to_dict("records"))))


def test_items_are_the_model_per_event_and_log_each_measurement(trained_models: Path) -> None:
    service = GammaClassifierService(VigieSettings(asset_config=None))
    service.bind(ModelStore(trained_models).load_current(SERVICE))
    batch = parse(events(FRAME[COLUMNS].to_dict("records")))
    items = service.predict("MAGIC-1", batch)
    expected = clf.p_gamma(service.model.model, FRAME[COLUMNS].to_numpy())
    cut = service.cut("MAGIC-1").threshold
    assert [i.body["p_gamma"] for i in items] == expected.tolist()
    assert [i.body["class"] for i in items] == ["gamma" if p >= cut else "hadron" for p in expected]
    assert [i.measurement for i in items] == [e.model_dump(mode="json") for e in batch]
    assert [i.points[0].value for i in items] == expected.tolist()
    assert len({i.level for i in items}) == 1  # the batch's level
    one = service.predict("MAGIC-1", batch[5:6])[0]
    assert one.body["p_gamma"] == pytest.approx(expected[5], abs=1e-12)
    assert np.isclose(one.points[0].value, expected[5])
