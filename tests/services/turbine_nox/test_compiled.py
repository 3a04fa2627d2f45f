"""turbine-nox's compiled static model (ONNX Runtime; the online corrector stays numpy) against
the joblib estimators, on the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import INPUTS, measurements, turbine_frame
from tests.shared.models.test_compiled import (
    assert_card_lists_compiled_parts,
    assert_old_card_loads_joblib_with_one_log_line,
    assert_tampered_onnx_makes_readyz_503,
)
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services.turbine_nox import pems
from vigie_services.turbine_nox.service import TurbineNoxService

HELD_OUT = turbine_frame(rows_per_year=400, years=(2015,), seed=21)  # not the training rows
PARTS = dict.fromkeys(pems.TARGETS, pems.COMPILED_TOLERANCE)


def test_card_lists_one_compiled_file_per_target(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(trained_models, SERVICE, PARTS)
    assert {p.file for p in parts.values()} == {"model.NOX.onnx", "model.CO.onnx"}


def test_compiled_static_model_equals_joblib_within_the_tolerance(trained_models: Path) -> None:
    loaded = ModelStore(trained_models).load_current(SERVICE)
    serving = loaded.serving().model
    assert all(isinstance(e, CompiledPredictor) for e in serving.estimators.values())
    reference = joblib.load(loaded.path)
    x = HELD_OUT[list(INPUTS)].to_numpy()
    compiled, expected = serving.static(x), reference.static(x)
    for target in pems.TARGETS:
        assert np.abs(compiled[target] - expected[target]).max() <= pems.COMPILED_TOLERANCE
    # the corrector works on either form's static values: same corrected value
    y = {t: HELD_OUT[t].to_numpy() for t in pems.TARGETS}
    online = pems.replay(serving, x[:200], {t: v[:200] for t, v in y.items()})
    offline = pems.replay(reference, x[:200], {t: v[:200] for t, v in y.items()})
    for target in pems.TARGETS:
        np.testing.assert_allclose(online[target], offline[target], rtol=0, atol=1e-2)


def test_a_card_without_a_compiled_form_is_served_by_joblib(
    trained_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = assert_old_card_loads_joblib_with_one_log_line(
        trained_models, SERVICE, tmp_path, caplog
    )
    service = TurbineNoxService(VigieSettings(asset_config=None))
    service.bind(loaded)
    estimators = service.model.model.estimators.values()
    assert not any(isinstance(e, CompiledPredictor) for e in estimators)


@pytest.mark.integration
def test_a_tampered_onnx_file_leaves_the_service_unready(
    trained_models: Path, tmp_path: Path
) -> None:
    probe = {"asset_id": "GT1", "measurements": measurements(HELD_OUT, slice(0, 3))}
    assert_tampered_onnx_makes_readyz_503(trained_models, SERVICE, tmp_path, probe)
