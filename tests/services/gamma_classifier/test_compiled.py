"""gamma-classifier's compiled estimator (ONNX Runtime) against the joblib one, on the model
``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.services.gamma_classifier.conftest import SERVICE, Trained
from tests.services.gamma_classifier.synthetic import COLUMNS, events, gamma_frame
from tests.shared.models.test_compiled import (
    assert_card_lists_compiled_parts,
    assert_old_card_loads_joblib_with_one_log_line,
    assert_tampered_onnx_makes_readyz_503,
)
from vigie.models.compiled import CompiledPredictor
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.service import GammaClassifierService

HELD_OUT = gamma_frame(2000, seed=123)  # not the training seed


def test_card_lists_the_compiled_estimator(trained_models: Path) -> None:
    parts = assert_card_lists_compiled_parts(
        trained_models, SERVICE, {"estimator": clf.COMPILED_TOLERANCE}
    )
    assert parts["estimator"].file == "model.onnx"
    assert parts["estimator"].method == "predict_proba"


def test_compiled_p_gamma_equals_joblib_within_the_tolerance(trained: Trained) -> None:
    assert isinstance(trained.model.estimator, CompiledPredictor)
    assert not isinstance(trained.joblib_model.estimator, CompiledPredictor)
    values = HELD_OUT[COLUMNS].to_numpy()
    compiled = clf.p_gamma(trained.model, values)
    reference = clf.p_gamma(trained.joblib_model, values)
    assert np.abs(compiled - reference).max() <= clf.COMPILED_TOLERANCE
    one = clf.p_gamma(trained.model, values[:1])  # one event, as most requests
    assert one.shape == (1,) and abs(one[0] - reference[0]) <= clf.COMPILED_TOLERANCE


def test_a_card_without_a_compiled_form_is_served_by_joblib(
    trained_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = assert_old_card_loads_joblib_with_one_log_line(
        trained_models, SERVICE, tmp_path, caplog
    )
    service = GammaClassifierService(VigieSettings(asset_config=None))
    service.bind(loaded)
    assert not isinstance(service.model.model.estimator, CompiledPredictor)
    values = HELD_OUT[COLUMNS].to_numpy()[:50]
    assert clf.p_gamma(service.model.model, values).shape == (50,)


@pytest.mark.integration
def test_a_tampered_onnx_file_leaves_the_service_unready(
    trained_models: Path, tmp_path: Path
) -> None:
    rows = HELD_OUT[COLUMNS].to_dict("records")[:5]
    probe = {"asset_id": "MAGIC-1", "measurements": events(rows)}
    assert_tampered_onnx_makes_readyz_503(trained_models, SERVICE, tmp_path, probe)
