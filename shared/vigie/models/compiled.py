"""Compiled serving: ONNX Runtime sessions standing in for fitted scikit-learn estimators.

This is the half of compiled inference a serving worker runs; it imports ``onnxruntime`` (when a
predictor is built) and nothing that converts. Converting the estimators, the agreement check
and the files written next to the joblib artifact are in :mod:`vigie.models.compile`, which
only training imports (``vigie train``): a worker holds neither ``onnx`` nor ``skl2onnx``.

:class:`CompiledPredictor` builds one ``InferenceSession`` per part at load time (never per
request) with one intra-op and one inter-op thread, sequential execution (gunicorn runs several
workers on two cores), and answers ``predict`` / ``predict_proba`` / ``score_samples`` with
scikit-learn's shapes and float64 values. Inputs are converted once to the graph's C-contiguous
input dtype (no copy when they already are: float64 features go to a float64 graph as they
are). Loading, sha256 verification and the fallback log line are in :mod:`vigie.models.store`.

:class:`CompiledSlot` stands for a compiled part inside the serving artifact
(``serving.joblib``): pickles name ``vigie.models.compiled.CompiledSlot``, so the class stays in
this module, which every worker imports anyway.

A service's model class is :class:`Compilable`: it names the inner estimators worth compiling
and puts predictors in their place; the wrapper's arithmetic (calibration, clipping, coherence,
corrections) stays in numpy and runs the same for both forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
SCORE_SAMPLES = "score_samples"
METHODS = (PREDICT, PREDICT_PROBA, SCORE_SAMPLES)

_INPUT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class Compilable(Protocol):
    """The hook of a service's model class."""

    def compiled_parts(self) -> dict[str, Any]:
        """The inner fitted estimators to compile, by part name (read at training)."""

    def with_compiled(self, predictors: Mapping[str, Any]) -> Any:
        """A copy of the model whose named estimators are replaced by ``predictors`` (a subset of
        :meth:`compiled_parts`; the others stay joblib)."""


def is_compiled(estimator: Any) -> bool:
    """Whether ``estimator`` is a :class:`CompiledPredictor` (then no OpenMP limit is needed)."""
    return isinstance(estimator, CompiledPredictor)


def all_compiled(estimators: Iterable[Any]) -> bool:
    """Whether every estimator is a :class:`CompiledPredictor` (then the OpenMP thread-pool
    limit that scikit-learn needs, about 70 µs per call, can be skipped)."""
    return all(isinstance(e, CompiledPredictor) for e in estimators)


class CompiledPredictor:
    """An ONNX Runtime session standing in for a fitted estimator.

    ``predict`` / ``predict_proba`` / ``score_samples`` return what scikit-learn's would: float64
    arrays of the same shapes (1-D predictions and scores, ``(n, n_classes)`` probabilities).
    Which of them work depends on ``method``, the estimator's kind: a classifier
    (``predict_proba``, and ``predict`` for labels), a regressor (``predict``) or an isolation
    forest (``score_samples``).
    """

    def __init__(self, name: str, model: bytes, method: str, n_features: int) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.name = name
        self.method = method
        self.n_features = n_features
        self.session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in _INPUT_TYPES:
            raise ValueError(f"{name}: expected one float or double tensor input, got {inputs}")
        self.dtype = _INPUT_TYPES[inputs[0].type]
        width = inputs[0].shape[-1] if inputs[0].shape else None
        if isinstance(width, int) and width != n_features:
            raise ValueError(
                f"{name}: the graph takes {width} features, the card says {n_features}"
            )
        self._input = inputs[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        # Classifiers: [label, probabilities]; regressors: [variable]; forests: [score_samples].
        if method == PREDICT_PROBA:
            if len(outputs) < 2:
                raise ValueError(f"{name}: a classifier graph has label and probabilities")
            self._label, self._main = outputs[0], outputs[1]
        else:
            self._label, self._main = None, outputs[0]

    def __repr__(self) -> str:
        return (
            f"CompiledPredictor({self.name!r}, {self.method}, {self.n_features} features, "
            f"{np.dtype(self.dtype).name})"
        )

    def _run(self, x: npt.ArrayLike, output: str) -> np.ndarray:
        arr = np.ascontiguousarray(x, dtype=self.dtype)  # no copy when already of that dtype
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(f"{self.name}: expected shape (n, {self.n_features}), got {arr.shape}")
        result: np.ndarray = self.session.run([output], {self._input: arr})[0]
        return result

    def _need(self, method: str) -> None:
        if self.method != method:
            raise AttributeError(f"{self.name} is compiled for {self.method}, not {method}")

    def predict(self, x: npt.ArrayLike) -> np.ndarray:
        if self.method == PREDICT_PROBA:
            assert self._label is not None
            return self._run(x, self._label).reshape(-1)
        self._need(PREDICT)
        return np.asarray(self._run(x, self._main).reshape(-1), dtype=np.float64)

    def predict_proba(self, x: npt.ArrayLike) -> np.ndarray:
        self._need(PREDICT_PROBA)
        return np.asarray(self._run(x, self._main), dtype=np.float64)

    def score_samples(self, x: npt.ArrayLike) -> np.ndarray:
        self._need(SCORE_SAMPLES)
        return np.asarray(self._run(x, self._main).reshape(-1), dtype=np.float64)


class CompiledSlot:
    """Stands for a compiled part inside a serving artifact (see :mod:`vigie.models.store`): the
    loader puts the part's :class:`CompiledPredictor` in its place. It predicts nothing itself,
    and pickles without scikit-learn."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"CompiledSlot({self.name!r})"

    def _unfilled(self, *_args: Any, **_kwargs: Any) -> np.ndarray:
        raise RuntimeError(f"compiled part {self.name!r} was not loaded into its slot")

    predict = predict_proba = score_samples = _unfilled
