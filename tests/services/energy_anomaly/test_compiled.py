"""energy-anomaly's compiled forecaster and isolation forest (ONNX Runtime) against the joblib
estimators, on the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from tests.services.energy_anomaly.conftest import SERVICE
from tests.services.energy_anomaly.synthetic import gas_frame
from tests.shared.models.compiled_checks import assert_card_lists_compiled_parts
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import features as ft
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc

HELD_OUT = gas_frame(start="2023-01-01", days=120, seed=5)  # after the training years
PARTS = {"forecaster": md.FORECAST_TOLERANCE, "isolation_forest": md.PROFILE_TOLERANCE}


def test_card_lists_the_compiled_forecaster_and_isolation_forest(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(trained_models, SERVICE, PARTS)
    assert parts["forecaster"].file == "model.forecaster.onnx"
    assert parts["isolation_forest"].method == "score_samples"


def test_compiled_scores_equal_joblib_within_the_tolerance(trained_models: Path) -> None:
    loaded = ModelStore(trained_models).load_current(SERVICE)
    serving = loaded.serving().model
    assert isinstance(serving.forecaster, CompiledPredictor)
    assert isinstance(serving.isolation_forest, CompiledPredictor)
    reference = joblib.load(loaded.path)
    for sid, part in dt.split_series(HELD_OUT).items():
        series = md.SeriesInput.from_frame(part)
        got, want = sc.score(serving, sid, series), sc.score(reference, sid, series)
        prep = md.prepare(series)
        _, scale = ft.forecast_features(series, prep, reference.series[sid].mean_daily_mwh)
        # tolerances of the parts: the forecast ratio, and score_samples (profile_z x its scale)
        assert (np.abs(got.forecast - want.forecast) / scale).max() <= md.FORECAST_TOLERANCE
        profile = np.abs(got.profile_z - want.profile_z) * reference.profile_scale
        assert profile.max() <= md.PROFILE_TOLERANCE
        assert got.levels == want.levels and got.kinds == want.kinds
