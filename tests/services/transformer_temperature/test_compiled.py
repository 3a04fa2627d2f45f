"""transformer-temperature's compiled horizons (ONNX Runtime) against the joblib estimators, on
the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from tests.services.transformer_temperature.conftest import SERVICE
from tests.shared.models.compiled_checks import assert_card_lists_compiled_parts
from tests.support.synthetic import ETT_COLUMNS, transformer_frame
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie_services.transformer_temperature import features as ft
from vigie_services.transformer_temperature import forecasting as fc

HELD_OUT = transformer_frame(ft.HISTORY_HOURS + 600, seed=11, start="2018-06-01")
PARTS = {f"h{h}": fc.COMPILED_TOLERANCE for h in ft.HORIZONS}


def test_card_lists_one_compiled_file_per_horizon(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(trained_models, SERVICE, PARTS)
    assert [p.file for p in parts.values()] == [f"model.h{h}.onnx" for h in ft.HORIZONS]


def test_compiled_forecasts_equal_joblib_within_the_tolerance(trained_models: Path) -> None:
    store = ModelStore(trained_models)
    loaded = store.load_current(SERVICE)
    serving = loaded.serving().model
    assert all(isinstance(e, CompiledPredictor) for e in serving.estimators)
    reference = joblib.load(loaded.path)
    values = HELD_OUT[ETT_COLUMNS].to_numpy()
    compiled, expected = fc.forecast(serving, values), fc.forecast(reference, values)
    _, scale = ft.features_and_scale(values)
    # the tolerance is on the scaled change: |forecast difference| / ot_scale, per horizon
    assert (np.abs(compiled - expected) / scale[:, None]).max() <= fc.COMPILED_TOLERANCE
    assert np.abs(compiled - expected).max() < 1e-3  # °C: below what the service reports
    last = fc.forecast(serving, values[-ft.HISTORY_HOURS :])  # one origin, as SCADA posts
    np.testing.assert_allclose(last, expected[-1:], rtol=0, atol=1e-3)
