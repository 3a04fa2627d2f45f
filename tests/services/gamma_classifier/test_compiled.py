"""gamma-classifier's compiled estimator (ONNX Runtime) against the joblib one, on the model
``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.services.gamma_classifier.conftest import SERVICE, Trained
from tests.services.gamma_classifier.synthetic import COLUMNS, gamma_frame
from tests.shared.models.compiled_checks import assert_card_lists_compiled_parts
from vigie.models.compiled import CompiledPredictor
from vigie_services.gamma_classifier import classifier as clf

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
