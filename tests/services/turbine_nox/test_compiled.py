"""turbine-nox's compiled static model (ONNX Runtime; the online corrector stays numpy) against
the joblib estimators, on the model ``vigie train`` made from synthetic data."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import INPUTS, turbine_frame
from tests.shared.models.compiled_checks import assert_card_lists_compiled_parts
from vigie.models.compiled import CompiledPredictor
from vigie.models.store import ModelStore
from vigie_services.turbine_nox import pems, training

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
    online = training.replay(serving, x[:200], {t: v[:200] for t, v in y.items()})
    offline = training.replay(reference, x[:200], {t: v[:200] for t, v in y.items()})
    for target in pems.TARGETS:
        np.testing.assert_allclose(online[target], offline[target], rtol=0, atol=1e-2)
