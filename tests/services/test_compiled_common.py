"""The compiled inference fallback every prediction service shares: a model whose card has no
compiled form (trained before compiled inference) is served by its joblib estimators, with one
log line saying so. Each service's ``test_compiled.py`` holds its compiled parts against its
joblib ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.cases import Case, valid_bodies
from tests.shared.models.compiled_checks import assert_old_card_loads_joblib_with_one_log_line
from vigie.contract.batch import Batch
from vigie.models.compiled import CompiledPredictor
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings

ROWS = 3


def test_a_card_without_a_compiled_form_is_served_by_joblib(
    prediction_case: Case, case_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = prediction_case.service
    loaded = assert_old_card_loads_joblib_with_one_log_line(case_models, name, tmp_path, caplog)
    service = prediction_case.service_class()(VigieSettings(asset_config=None))
    service.bind(loaded)
    parts = service.model.model.compiled_parts()
    assert parts, f"{name}: its model names no part to compile"
    compiled = [part for part, est in parts.items() if isinstance(est, CompiledPredictor)]
    assert compiled == [], f"{name}: compiled parts served from a card without them"
    # the joblib estimators answer a valid request, one item per new row
    [body] = valid_bodies(prediction_case, case_models.parent / "data", 1, rows=ROWS)
    measurements = [service.Measurement.model_validate(m) for m in body["measurements"]]
    scores = score_call(service, Batch(body["asset_id"], measurements))
    assert len(scores.items) == ROWS
