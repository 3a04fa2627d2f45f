"""solar-flare's compiled classifiers (ONNX Runtime, Platt calibration kept in numpy) against
the joblib ones, on the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.services.solar_flare.conftest import SERVICE
from tests.services.solar_flare.synthetic import simulate
from tests.shared.models.compiled_checks import (
    assert_card_lists_compiled_parts,
    assert_old_card_loads_joblib_with_one_log_line,
    assert_tampered_onnx_makes_readyz_503,
)
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare.service import SolarFlareService

HELD_OUT = simulate(500, seed=77)  # not the training simulation
PARTS = dict.fromkeys(md.KEYS, md.COMPILED_TOLERANCE)


def _base(estimator: object) -> object:
    return estimator.base if isinstance(estimator, md.PlattCalibrated) else estimator


def test_card_lists_one_compiled_file_per_class(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(trained_models, SERVICE, PARTS)
    assert {p.file for p in parts.values()} == {f"model.{k}.onnx" for k in md.KEYS}


def test_compiled_probabilities_equal_joblib_within_the_tolerance(trained_models: Path) -> None:
    loaded = ModelStore(trained_models).load_current(SERVICE)
    serving = loaded.serving().model
    assert all(isinstance(_base(e), CompiledPredictor) for e in serving.estimators.values())
    reference = joblib.load(loaded.path)
    x = ft.features(HELD_OUT.table)
    for key in md.KEYS:  # the compiled part itself: the base classifier's P(1)
        got = _base(serving.estimators[key]).predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        want = _base(reference.estimators[key]).predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        assert np.abs(got - want).max() <= md.COMPILED_TOLERANCE
    # what the service serves: calibrated, coherent probabilities
    compiled, expected = md.probabilities(serving, x), md.probabilities(reference, x)
    for key in md.KEYS:
        assert np.abs(compiled[key] - expected[key]).max() <= md.COMPILED_TOLERANCE
    one = md.probabilities(serving, x[:1])
    assert all(abs(one[k][0] - expected[k][0]) <= md.COMPILED_TOLERANCE for k in md.KEYS)


def test_a_card_without_a_compiled_form_is_served_by_joblib(
    trained_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = assert_old_card_loads_joblib_with_one_log_line(
        trained_models, SERVICE, tmp_path, caplog
    )
    service = SolarFlareService(VigieSettings(asset_config=None))
    service.bind(loaded)
    estimators = service.model.model.estimators.values()
    assert not any(isinstance(_base(e), CompiledPredictor) for e in estimators)


@pytest.mark.integration
def test_a_tampered_onnx_file_leaves_the_service_unready(
    trained_models: Path, tmp_path: Path
) -> None:
    probe = {
        "asset_id": "SUN",
        "measurements": [
            {"timestamp": HELD_OUT.timestamp(300), "summary": HELD_OUT.summary_json(300)}
        ],
    }
    assert_tampered_onnx_makes_readyz_503(trained_models, SERVICE, tmp_path, probe)
