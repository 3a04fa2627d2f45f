"""transformer-temperature's compiled horizons (ONNX Runtime) against the joblib estimators, on
the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.services.transformer_temperature.conftest import SERVICE
from tests.shared.models.test_compiled import (
    assert_card_lists_compiled_parts,
    assert_old_card_loads_joblib_with_one_log_line,
    assert_tampered_onnx_makes_readyz_503,
)
from tests.support.synthetic import ETT_COLUMNS, measurements, transformer_frame
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services.transformer_temperature import forecasting as fc
from vigie_services.transformer_temperature.service import TransformerTemperatureService

HELD_OUT = transformer_frame(fc.HISTORY_HOURS + 600, seed=11, start="2018-06-01")
PARTS = {f"h{h}": fc.COMPILED_TOLERANCE for h in fc.HORIZONS}


def test_card_lists_one_compiled_file_per_horizon(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(trained_models, SERVICE, PARTS)
    assert [p.file for p in parts.values()] == [f"model.h{h}.onnx" for h in fc.HORIZONS]


def test_compiled_forecasts_equal_joblib_within_the_tolerance(trained_models: Path) -> None:
    store = ModelStore(trained_models)
    loaded = store.load_current(SERVICE)
    serving = loaded.serving().model
    assert all(isinstance(e, CompiledPredictor) for e in serving.estimators)
    reference = joblib.load(loaded.path)
    values = HELD_OUT[ETT_COLUMNS].to_numpy()
    compiled, expected = fc.forecast(serving, values), fc.forecast(reference, values)
    _, scale = fc._features_and_scale(values)
    # the tolerance is on the scaled change: |forecast difference| / ot_scale, per horizon
    assert (np.abs(compiled - expected) / scale[:, None]).max() <= fc.COMPILED_TOLERANCE
    assert np.abs(compiled - expected).max() < 1e-3  # °C: below what the service reports
    last = fc.forecast(serving, values[-fc.HISTORY_HOURS :])  # one origin, as SCADA posts
    np.testing.assert_allclose(last, expected[-1:], rtol=0, atol=1e-3)


def test_a_card_without_a_compiled_form_is_served_by_joblib(
    trained_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = assert_old_card_loads_joblib_with_one_log_line(
        trained_models, SERVICE, tmp_path, caplog
    )
    service = TransformerTemperatureService(VigieSettings(asset_config=None))
    service.bind(loaded)
    assert not any(isinstance(e, CompiledPredictor) for e in service.model.model.estimators)
    values = HELD_OUT[ETT_COLUMNS].to_numpy()[: fc.HISTORY_HOURS]
    assert fc.forecast(service.model.model, values).shape == (1, len(fc.HORIZONS))


@pytest.mark.integration
def test_a_tampered_onnx_file_leaves_the_service_unready(
    trained_models: Path, tmp_path: Path
) -> None:
    probe = {
        "asset_id": "ETTh1",
        "measurements": measurements(HELD_OUT, slice(0, fc.HISTORY_HOURS)),
    }
    assert_tampered_onnx_makes_readyz_503(trained_models, SERVICE, tmp_path, probe)
