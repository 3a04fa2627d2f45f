"""``vigie replay`` of the real training files: every request each service makes of them is
what its schema and its batch checks accept (energy-anomaly, whose real file holds values the
schema refuses, checks that in its own folder). The requests made of synthetic files are each
service's domain: ``tests/services/<service>/test_replay_requests.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.cases import Case
from tests.services.conftest import PREDICTION_CASES
from tests.support.replay import parsed, real_requests, unbound
from vigie.contract.batch import Batch
from vigie.models.store import ModelStore
from vigie_services.transformer_temperature.features import HISTORY_HOURS

# service -> (real file, new rows it holds, history rows sent before the new ones)
REAL_FILES = {
    "solar-flare": ("solar_flare/daily_train.csv", 7650, 0),
    "gamma-classifier": ("gamma/train.csv", 15216, 0),
    "transformer-temperature": ("transformer/ETTh2_train.csv", 13936 - (HISTORY_HOURS - 1),
                                HISTORY_HOURS - 1),
    "turbine-nox": ("turbine_nox/train.csv", 29349, 0),
}  # fmt: skip
CASES = [c for c in PREDICTION_CASES if c.service in REAL_FILES]


@pytest.mark.realdata
@pytest.mark.parametrize("prediction_case", CASES, ids=[c.service for c in CASES], indirect=True)
def test_every_request_of_the_real_file_is_accepted(
    prediction_case: Case, case_models: Path
) -> None:
    name = prediction_case.service
    relative, rows, history = REAL_FILES[name]
    service = unbound(prediction_case.service_class())
    requests = real_requests(service, relative)
    assert sum(r.rows for r in requests) == rows
    service.bind(ModelStore(case_models).load_current(name))  # its checks may need the card
    for r in requests:
        service.check(Batch(r.asset_id, parsed(service, r, history)))
