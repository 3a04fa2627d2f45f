"""gamma-classifier replay: event batches from a synthetic ``gamma/train.csv``-shaped file."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import real_data_dir
from tests.services.gamma_classifier.synthetic import COLUMNS, gamma_frame
from vigie.contract.service import ReplayRequest
from vigie.serve.app import ASSET_ID_PATTERN
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier.service import (
    REPLAY_ASSET,
    REPLAY_START,
    GammaClassifierService,
    GammaEvent,
)


@pytest.fixture
def service() -> GammaClassifierService:
    return GammaClassifierService(VigieSettings(asset_config=None))


def events_of(request: ReplayRequest) -> list[GammaEvent]:
    """The request's events as the service's schema reads them from JSON."""
    assert re.fullmatch(ASSET_ID_PATTERN, request.asset_id)
    assert request.rows == len(request.measurements)  # no history: every event is new
    return [
        GammaEvent.model_validate_json(json.dumps(m, allow_nan=False)) for m in request.measurements
    ]


def test_batches_of_events_with_synthetic_arrival_times(
    tmp_path: Path, service: GammaClassifierService
) -> None:
    frame = gamma_frame(450, seed=4)
    csv = tmp_path / "events.csv"
    frame.to_csv(csv, index=False)
    requests = list(service.replay_requests(csv, None, 200))
    assert [r.rows for r in requests] == [200, 200, 50]
    assert {r.asset_id for r in requests} == {REPLAY_ASSET}
    events = [e for r in requests for e in events_of(r)]
    assert events[0].timestamp == REPLAY_START
    assert {b.timestamp - a.timestamp for a, b in pairwise(events)} == {timedelta(seconds=1)}
    assert all("class" not in m for r in requests for m in r.measurements)  # the label stays
    sent = [[getattr(e, c) for c in COLUMNS] for e in events]
    assert sent == frame[COLUMNS].to_numpy().tolist()
    GammaClassifierService._check_consistency(events)  # fWidth <= fLength, fConc1 <= fConc


def test_asset_override_and_unusable_file(tmp_path: Path, service: GammaClassifierService) -> None:
    csv = tmp_path / "events.csv"
    gamma_frame(10).to_csv(csv, index=False)
    assert {r.asset_id for r in service.replay_requests(csv, "MAGIC-2", 4)} == {"MAGIC-2"}
    gamma_frame(10).drop(columns=["fAlpha"]).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="missing column"):
        service.replay_requests(csv, None, 4)


@pytest.mark.realdata
def test_real_events_are_all_accepted(service: GammaClassifierService) -> None:
    path = real_data_dir() / "gamma" / "train.csv"
    if not path.is_file():
        pytest.skip(f"real data not found: {path} (set VIGIE_DATA_DIR)")
    requests = list(service.replay_requests(path, None, service.replay_batch))
    assert sum(r.rows for r in requests) == 15216
    for r in requests:
        GammaClassifierService._check_consistency(events_of(r))
