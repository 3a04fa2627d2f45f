"""gamma-classifier replay: event batches from a synthetic ``gamma/train.csv``-shaped file."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.services.gamma_classifier.synthetic import COLUMNS, gamma_frame
from tests.support.replay import parsed, unbound_fixture
from vigie.contract.batch import Batch
from vigie_services.gamma_classifier.replay import REPLAY_ASSET, REPLAY_START
from vigie_services.gamma_classifier.service import GammaClassifierService, GammaEvent

service = unbound_fixture(GammaClassifierService)


def test_batches_of_events_with_synthetic_arrival_times(
    tmp_path: Path, service: GammaClassifierService
) -> None:
    frame = gamma_frame(450, seed=4)
    csv = tmp_path / "events.csv"
    frame.to_csv(csv, index=False)
    requests = list(service.replay_requests(csv, None, 200))
    assert [r.rows for r in requests] == [200, 200, 50]
    assert {r.asset_id for r in requests} == {REPLAY_ASSET}
    events: list[GammaEvent] = [e for r in requests for e in parsed(service, r)]
    assert events[0].timestamp == REPLAY_START
    assert {b.timestamp - a.timestamp for a, b in pairwise(events)} == {timedelta(seconds=1)}
    assert all("class" not in m for r in requests for m in r.measurements)  # the label stays
    sent = [[getattr(e, c) for c in COLUMNS] for e in events]
    assert sent == frame[COLUMNS].to_numpy().tolist()
    service.check(Batch(REPLAY_ASSET, events))  # fWidth <= fLength, fConc1 <= fConc


def test_asset_override_and_unusable_file(tmp_path: Path, service: GammaClassifierService) -> None:
    csv = tmp_path / "events.csv"
    gamma_frame(10).to_csv(csv, index=False)
    assert {r.asset_id for r in service.replay_requests(csv, "MAGIC-2", 4)} == {"MAGIC-2"}
    gamma_frame(10).drop(columns=["fAlpha"]).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="missing column"):
        service.replay_requests(csv, None, 4)
