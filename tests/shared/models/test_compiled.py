"""vigie.models.compiled, the serving half of compiled inference, with the real onnxruntime:
sessions run on one thread with the graph's input dtype, predictors check their input, a slot
left unfilled says so, and serving imports no converter (neither ``onnx``, ``skl2onnx`` nor
:mod:`vigie.models.compile`).

The checks every service's ``test_compiled.py`` runs are in
:mod:`tests.shared.models.compiled_checks`."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.shared.models.estimators import HELD_OUT, estimators
from vigie.models.compile import to_onnx
from vigie.models.compiled import CompiledPredictor, CompiledSlot, all_compiled, is_compiled


def test_sessions_use_one_thread_and_the_graph_input_dtype() -> None:
    forest = estimators()["random_forest_regressor"]
    boosting = estimators()["hist_gradient_boosting_regressor"]
    p32 = CompiledPredictor("f", to_onnx(forest), "predict", 8)
    p64 = CompiledPredictor("b", to_onnx(boosting), "predict", 8)
    for p in (p32, p64):
        options = p.session.get_session_options()
        assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    # forests compare float32(x) like scikit-learn's trees; boosting keeps float64
    assert p32.dtype == np.float32 and p64.dtype == np.float64
    assert "float64" in repr(p64)
    with pytest.raises(ValueError, match="expected shape"):
        p32.predict(HELD_OUT[:, :5])
    with pytest.raises(AttributeError, match="compiled for predict"):
        p32.predict_proba(HELD_OUT)


def test_a_graph_of_another_width_or_an_unknown_method_is_refused() -> None:
    graph = to_onnx(estimators()["random_forest_regressor"])  # 8 features
    with pytest.raises(ValueError, match="the graph takes 8 features, the card says 7"):
        CompiledPredictor("f", graph, "predict", 7)
    with pytest.raises(ValueError, match="unknown method 'transform'"):
        CompiledPredictor("f", graph, "transform", 8)


def test_a_classifier_answers_labels_and_probabilities_with_scikit_learns_shapes() -> None:
    est = estimators()["random_forest_classifier"]
    p = CompiledPredictor("c", to_onnx(est), "predict_proba", 8)
    proba = p.predict_proba(HELD_OUT)
    assert proba.shape == (len(HELD_OUT), 2) and proba.dtype == np.float64
    np.testing.assert_array_equal(p.predict(HELD_OUT), est.predict(HELD_OUT))
    with pytest.raises(AttributeError, match="compiled for predict_proba, not score_samples"):
        p.score_samples(HELD_OUT)


def test_is_compiled_tells_predictors_from_estimators() -> None:
    forest = estimators()["random_forest_regressor"]
    p = CompiledPredictor("f", to_onnx(forest), "predict", 8)
    assert is_compiled(p) and not is_compiled(forest)
    assert all_compiled([p, p]) and not all_compiled([p, forest])


def test_an_unfilled_slot_pickles_by_its_serving_path_and_refuses_to_predict() -> None:
    data = pickle.dumps(CompiledSlot("h1"))
    assert b"vigie.models.compiled" in data  # what serving.joblib files name
    slot = pickle.loads(data)
    assert repr(slot) == "CompiledSlot('h1')"
    for method in (slot.predict, slot.predict_proba, slot.score_samples):
        with pytest.raises(RuntimeError, match="compiled part 'h1' was not loaded"):
            method(HELD_OUT)


SERVE = """
import json, sys
from pathlib import Path

import numpy as np

import vigie.models.store  # noqa: F401 (what a worker loads models with)
from vigie.models.compiled import CompiledPredictor

graph, rows = Path(sys.argv[1]).read_bytes(), np.load(sys.argv[2])
predicted = CompiledPredictor("f", graph, "predict", rows.shape[1]).predict(rows)
modules = sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "skl2onnx", "sklearn")
                 or (m + ".").startswith("vigie.models.compile."))
print(json.dumps({"predicted": predicted.tolist(), "modules": modules}))
"""


def test_serving_imports_no_converter(tmp_path: Path) -> None:
    """A fresh interpreter builds a predictor from a graph file and predicts with it, as a
    serving worker does, without importing onnx, skl2onnx, scikit-learn or the converters."""
    forest = estimators()["random_forest_regressor"]
    graph, rows = tmp_path / "model.onnx", tmp_path / "rows.npy"
    graph.write_bytes(to_onnx(forest))
    np.save(rows, HELD_OUT[:50])
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(graph), str(rows)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    np.testing.assert_allclose(out["predicted"], forest.predict(HELD_OUT[:50]), atol=1e-5)
