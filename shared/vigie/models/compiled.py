"""Compiled inference: fitted scikit-learn estimators served through ONNX Runtime.

Why
---
A scikit-learn forest spends milliseconds of Python per call whatever the number of rows (one
``tree.apply`` per tree, input validation, an OpenMP thread-pool limit); the same forest compiled
to ONNX Runtime answers a single row in microseconds. The joblib model stays the reference: it is
what ``vigie evaluate`` scores, and the compiled form is published only when it agrees with it.

What is compiled
----------------
A service's model wraps fitted estimators (one per horizon or target, a calibration, an online
correction, ...). Its model class declares the inner estimators worth compiling and how to put a
predictor in their place (the :class:`Compilable` hook: ``compiled_parts()`` -> name ->
estimator, ``with_compiled(predictors)`` -> a copy of the model). Only those estimators are
compiled; the wrapper's arithmetic (calibration, clipping, coherence, corrections) stays in
numpy and runs the same for both forms.

* Tree ensembles use vigie's converters (:func:`native_onnx`): random forests and extra trees,
  histogram gradient boosting (regression with an identity link, binary classification),
  ``IsolationForest.score_samples`` and soft votes of those, each as one ai.onnx.ml opset 5
  ``TreeEnsemble`` node (plus a sigmoid, a weighted mean or ``-2 ** -x``). They convert in
  about a second where skl2onnx took up to 20 s (its isolation forest makes ~27 nodes per tree:
  6 ms per call, slower than scikit-learn), keep scikit-learn's comparisons exact (below), and
  opset 5 stores a tree ensemble compactly (the energy forest's session: +83 MB instead of
  +376 MB with skl2onnx's opset-3 ``TreeEnsembleRegressor``). skl2onnx converts the rest:
  linear pipelines (``StandardScaler`` + ``Ridge`` / ``LogisticRegression``), without ZipMap so
  probabilities come back as an array.
* Opsets are pinned: :data:`NATIVE_OPSET` (IR :data:`NATIVE_IR_VERSION`) for vigie's graphs,
  :data:`OPSET` for skl2onnx's.

Precision and agreement
-----------------------
ONNX Runtime computes in float32, the joblib model in float64. Random-forest, extra-trees and
isolation-forest trees compare ``float32(x)`` with float64 thresholds in scikit-learn too: their
graphs take float32 input and the largest float32 threshold <= scikit-learn's, so both forms take
the same branches; leaf values are summed in float32. Histogram gradient boosting compares
float64 values with float64 thresholds, and on real features (computed from quantised readings)
a float32 comparison flips branches on about 1 % of the rows: its graphs run in float64 (input,
thresholds, leaf values, sums, output). Linear models run in float32. Each part's card entry
says its input dtype.

At training time, :func:`compile_parts` runs both forms on the service's check rows (held-out or
validation rows, at most :data:`MAX_CHECK_ROWS`) and records the largest absolute difference of
each output. A part whose difference exceeds its tolerance (declared by the service, documented
in its model module) is not published (logged, and the card says why): the service keeps the
joblib estimator for it.

Serving
-------
:class:`CompiledPredictor` builds one ``InferenceSession`` per part at load time (never per
request) with one intra-op and one inter-op thread, sequential execution (gunicorn runs several
workers on two cores), and answers ``predict`` / ``predict_proba`` / ``score_samples`` with
scikit-learn's shapes and float64 values. Inputs are converted once to the graph's C-contiguous
input dtype (no copy when they already are: float64 features go to a float64 graph as they
are). Loading, sha256 verification and the fallback log line are in
:mod:`vigie.models.store`.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
SCORE_SAMPLES = "score_samples"
METHODS = (PREDICT, PREDICT_PROBA, SCORE_SAMPLES)

INPUT = "X"
OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}  # skl2onnx graphs (linear models)
NATIVE_OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 5}  # TreeEnsemble (onnxruntime >= 1.20)
NATIVE_IR_VERSION = 10  # the IR version of opset 21
MAX_CHECK_ROWS = 2000
PRECISION = "float32 (histogram gradient boosting in float64; see each part's input_dtype)"
_INPUT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Compilable(Protocol):
    """The hook of a service's model class."""

    def compiled_parts(self) -> dict[str, Any]:
        """The inner fitted estimators to compile, by part name."""

    def with_compiled(self, predictors: Mapping[str, Any]) -> Any:
        """A copy of the model whose named estimators are replaced by ``predictors`` (a subset of
        :meth:`compiled_parts`; the others stay joblib)."""


def is_compiled(estimator: Any) -> bool:
    """Whether ``estimator`` is a :class:`CompiledPredictor` (then no OpenMP limit is needed)."""
    return isinstance(estimator, CompiledPredictor)


def all_compiled(estimators: Any) -> bool:
    """Whether every estimator is a :class:`CompiledPredictor` (then the OpenMP thread-pool
    limit that scikit-learn needs, about 70 µs per call, can be skipped)."""
    return all(isinstance(e, CompiledPredictor) for e in estimators)


# ------------------------------------------------------------------------------------ serving


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


# ---------------------------------------------------------------------------------- converting


def method_of(estimator: Any) -> str:
    """Which method of ``estimator`` the compiled form reproduces."""
    from sklearn.base import is_classifier
    from sklearn.ensemble import IsolationForest

    if isinstance(estimator, IsolationForest):
        return SCORE_SAMPLES
    return PREDICT_PROBA if is_classifier(estimator) else PREDICT


def _skl2onnx(estimator: Any, n_features: int) -> bytes:
    """Linear pipelines and whatever else skl2onnx converts (float32 input, no ZipMap)."""
    from skl2onnx import convert_sklearn  # type: ignore[import-untyped]
    from skl2onnx.common.data_types import FloatTensorType  # type: ignore[import-untyped]
    from sklearn.base import is_classifier

    onx = convert_sklearn(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        target_opset=OPSET,
        options={id(estimator): {"zipmap": False}} if is_classifier(estimator) else None,
    )
    data: bytes = onx.SerializeToString()
    return data


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_average_path_length``: expected depth of an unsuccessful search in a
    binary search tree of ``n`` samples (0 for n <= 1, 1 for n = 2)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _float32_floor(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value: ``float32(x) <= t`` iff ``float32(x) <=
    floor32(t)``, so a compiled tree takes scikit-learn's branch for every float32 input."""
    out = values.astype(np.float32)
    over = out.astype(np.float64) > values
    out[over] = np.nextafter(out[over], np.float32(-np.inf))
    return out


@dataclass
class _Graph:
    """An ONNX graph being built; its input ``X`` is float64 when ``double``, else float32."""

    double: bool
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    _names: int = 0

    def name(self, stem: str) -> str:
        self._names += 1
        return f"{stem}_{self._names}"

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        output = out or self.name(op_type.lower())
        domain = "ai.onnx.ml" if op_type == "TreeEnsemble" else ""
        self.nodes.append(helper.make_node(op_type, inputs, [output], domain=domain, **attrs))
        return output

    def constant(self, stem: str, value: npt.ArrayLike, double: bool) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        array = np.asarray(value, dtype=np.float64 if double else np.float32)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def input(self, double: bool) -> str:
        """``X`` as a tree ensemble of that precision reads it (cast once if needed)."""
        if double == self.double:
            return INPUT
        name = INPUT + ("_double" if double else "_float")
        if not any(name in n.output for n in self.nodes):
            self.op("Cast", [INPUT], name, to=_elem_type(double))
        return name

    def serialize(self, n_features: int, outputs: list[tuple[str, int, list[Any]]]) -> bytes:
        import onnx
        from onnx import helper

        graph = helper.make_graph(
            self.nodes,
            "vigie_compiled",
            [helper.make_tensor_value_info(INPUT, _elem_type(self.double), [None, n_features])],
            [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid(domain, v) for domain, v in NATIVE_OPSET.items()],
            producer_name="vigie.models.compiled",
            ir_version=NATIVE_IR_VERSION,  # onnx's default may be newer than onnxruntime reads
        )
        onnx.checker.check_model(model)
        data: bytes = model.SerializeToString()
        return data


def _elem_type(double: bool) -> int:
    from onnx import TensorProto

    return int(TensorProto.DOUBLE if double else TensorProto.FLOAT)


@dataclass
class _Ensemble:
    """The attributes of one ``TreeEnsemble`` node (ai.onnx.ml opset 5), tree by tree.

    Opset 5 keeps splits, modes and leaf weights as tensors and leaves apart from branches: the
    energy forest (1.05 M nodes) is a 13 MB file and +83 MB in onnxruntime, against 36 MB and
    +376 MB as an opset-3 ``TreeEnsembleRegressor`` (a string and eleven int64 per node).
    ``double`` keeps thresholds, leaf values, input and output in float64; otherwise they are
    float32 and each threshold is the largest float32 <= scikit-learn's (whose trees compare
    ``float32(x)``)."""

    double: bool
    n_targets: int
    roots: list[int] = field(default_factory=list)
    nodes: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {
            k: [] for k in ("feature", "split", "true", "true_leaf", "false", "false_leaf", "nan")
        }
    )
    leaf_targets: list[np.ndarray] = field(default_factory=list)
    leaf_weights: list[np.ndarray] = field(default_factory=list)
    n_nodes: int = 0
    n_leaves: int = 0

    def add(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        leaf_value: np.ndarray,
        target: int = 0,
        missing_left: np.ndarray | None = None,
    ) -> None:
        """One tree, nodes numbered from its root 0. Per node: feature, threshold (go left when
        ``x <= t``), children (-1 for a leaf), and the value a leaf adds to output ``target``."""
        left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
        leaf = left < 0
        branches, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        if not len(branches):  # a lone leaf: one branch whose both sides are it
            branches, left, right = np.array([0]), np.array([0]), np.array([0])
        branch_id = np.zeros(len(leaf), dtype=np.int64)
        branch_id[branches] = np.arange(len(branches)) + self.n_nodes
        leaf_id = np.zeros(len(leaf), dtype=np.int64)
        leaf_id[leaves] = np.arange(len(leaves)) + self.n_leaves
        self.roots.append(int(branch_id[branches[0]]))
        lc, rc = left[branches], right[branches]
        n = self.nodes
        n["feature"].append(np.where(leaf[branches], 0, np.asarray(feature)[branches]))
        n["split"].append(np.asarray(threshold, dtype=np.float64)[branches])
        n["true_leaf"].append(leaf[lc].astype(np.int64))
        n["true"].append(np.where(leaf[lc], leaf_id[lc], branch_id[lc]))
        n["false_leaf"].append(leaf[rc].astype(np.int64))
        n["false"].append(np.where(leaf[rc], leaf_id[rc], branch_id[rc]))
        nan = np.zeros(len(branches)) if missing_left is None else missing_left[branches]
        n["nan"].append(np.asarray(nan, dtype=np.int64))
        self.leaf_targets.append(np.full(len(leaves), target, dtype=np.int64))
        self.leaf_weights.append(np.asarray(leaf_value, dtype=np.float64)[leaves])
        self.n_nodes += len(branches)
        self.n_leaves += len(leaves)

    def build(self, g: _Graph, base: npt.ArrayLike | None = None) -> str:
        """The node in ``g`` (plus ``base`` added); returns its ``(n, n_targets)`` output."""
        from onnx import numpy_helper

        n = {k: np.concatenate(v) for k, v in self.nodes.items()}
        dtype = np.float64 if self.double else np.float32
        splits = n["split"] if self.double else _float32_floor(n["split"])
        out = g.op(
            "TreeEnsemble",
            [g.input(self.double)],
            aggregate_function=1,  # SUM
            post_transform=0,  # NONE
            n_targets=self.n_targets,
            tree_roots=self.roots,
            nodes_featureids=n["feature"].tolist(),
            nodes_splits=numpy_helper.from_array(splits.astype(dtype)),
            nodes_modes=numpy_helper.from_array(np.zeros(self.n_nodes, dtype=np.uint8)),  # <=
            nodes_truenodeids=n["true"].tolist(),
            nodes_trueleafs=n["true_leaf"].tolist(),
            nodes_falsenodeids=n["false"].tolist(),
            nodes_falseleafs=n["false_leaf"].tolist(),
            nodes_missing_value_tracks_true=n["nan"].tolist(),
            leaf_targetids=np.concatenate(self.leaf_targets).tolist(),
            leaf_weights=numpy_helper.from_array(np.concatenate(self.leaf_weights).astype(dtype)),
        )
        if base is None or not np.any(base):
            return out
        return g.op("Add", [out, g.constant("base", np.reshape(base, (1, -1)), self.double)])


@dataclass(frozen=True)
class _Out:
    """A piece's output tensor: ``(n, k)``, float64 when ``double``."""

    name: str
    double: bool


def _forest(g: _Graph, forest: Any, classifier: bool) -> _Out:
    """Random forest / extra trees: the mean of the trees' leaf values (class fractions for a
    classifier; P(0) = 1 - P(1) for two classes); float32, as scikit-learn's trees compare
    ``float32(x)``."""
    if forest.n_outputs_ != 1:
        raise NotImplementedError("multi-output forests are not compiled")
    k = len(forest.classes_) if classifier else 1
    scored = [1] if k == 2 else list(range(k))
    ensemble = _Ensemble(double=False, n_targets=len(scored))
    for tree in forest.estimators_:
        tr = tree.tree_
        values = tr.value[:, 0, :]
        if classifier:  # leaf class weights -> fractions (as DecisionTreeClassifier.predict_proba)
            totals = values.sum(axis=1, keepdims=True)
            values = values / np.where(totals > 0, totals, 1.0)
        for target, column in enumerate(scored):
            ensemble.add(tr.feature, tr.threshold, tr.children_left, tr.children_right,
                         values[:, column] / len(forest.estimators_), target)  # fmt: skip
    out = ensemble.build(g)
    if k == 2:
        out = g.op("Concat", [g.op("Sub", [g.constant("one", 1.0, False), out]), out], axis=1)
    return _Out(out, double=False)


def _hist_gradient_boosting(g: _Graph, estimator: Any, classifier: bool) -> _Out:
    """Histogram gradient boosting: baseline + the sum of the trees' leaf values (then the
    sigmoid of a binary classifier), all in float64.

    scikit-learn compares float64 feature values with float64 bin thresholds, and features
    computed from quantised readings (e.g. OT changes over ot_scale) put thresholds halfway
    between values that differ by float64 noise: a float32 comparison takes the other branch on
    about 1 % of such rows (up to 1.5 scaled units off on the ETT validation origins). skl2onnx
    rounds the thresholds to float32 (and its float64 variant builds a graph onnxruntime
    refuses), so this converter is ours."""
    link = type(estimator._loss.link).__name__
    if classifier and (link != "LogitLink" or estimator.n_trees_per_iteration_ != 1):
        raise NotImplementedError("only binary classification (log loss) is compiled")
    if not classifier and link != "IdentityLink":
        raise NotImplementedError(f"the {link} of loss {estimator.loss!r} is not compiled")
    ensemble = _Ensemble(double=True, n_targets=1)
    for iteration in estimator._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise NotImplementedError("categorical splits are not compiled")
            left = np.where(nodes["is_leaf"].astype(bool), -1, nodes["left"].astype(np.int64))
            ensemble.add(nodes["feature_idx"], nodes["num_threshold"], left, nodes["right"],
                         nodes["value"], 0, nodes["missing_go_to_left"])  # fmt: skip
    raw = ensemble.build(g, np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel())
    if not classifier:
        return _Out(raw, double=True)
    p1 = g.op("Sigmoid", [raw])
    p0 = g.op("Sub", [g.constant("one", 1.0, True), p1])
    return _Out(g.op("Concat", [p0, p1], axis=1), double=True)


def _isolation_forest(g: _Graph, forest: Any) -> _Out:
    """``score_samples`` = ``-2 ** -(sum over trees of (depth(leaf) + c(n_leaf)) / (T c(max_
    samples)))``, ``c`` the average path length, as in scikit-learn; float32, as its trees
    compare ``float32(x)``. skl2onnx's converter builds about 27 nodes per tree (5400 for 200
    trees): 15 s to convert and 6 ms per call."""
    n_features = int(forest.n_features_in_)
    normaliser = _average_path_length(np.array([forest.max_samples_]))[0]
    denominator = len(forest.estimators_) * float(normaliser)
    if denominator <= 0:
        raise ValueError("isolation forest fitted on a single sample: nothing to compile")
    # scikit-learn indexes the columns of each tree only when trees saw a subset of features.
    subsample = any(len(f) != n_features for f in forest.estimators_features_)
    ensemble = _Ensemble(double=False, n_targets=1)
    for tree, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tr = tree.tree_
        left, right = tr.children_left, tr.children_right
        depth = np.zeros(tr.node_count)
        for node in range(tr.node_count):  # parents come before their children
            if left[node] != -1:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        feature = np.maximum(tr.feature, 0)
        if subsample:
            feature = np.asarray(features)[feature]
        path = (depth + _average_path_length(tr.n_node_samples)) / denominator
        ensemble.add(feature, tr.threshold, left, right, path)
    exponent = g.op("Neg", [ensemble.build(g)])
    anomaly = g.op("Pow", [g.constant("two", 2.0, False), exponent])
    return _Out(g.op("Neg", [anomaly]), double=False)


def _soft_vote(g: _Graph, vote: Any) -> _Out:
    """``VotingClassifier(voting="soft")``: the (weighted) mean of its members' probabilities,
    in float64 when a member is."""
    if vote.voting != "soft":
        raise NotImplementedError("only soft voting is compiled")
    weights = getattr(vote, "_weights_not_none", None)
    if weights is None:
        weights = [1.0] * len(vote.estimators_)
    total = float(sum(weights))
    members = [_piece(g, m) for m in vote.estimators_]
    double = any(m.double for m in members)
    terms = []
    for member, w in zip(members, weights, strict=True):
        name = member.name
        if member.double != double:
            name = g.op("Cast", [name], to=_elem_type(double))
        terms.append(g.op("Mul", [name, g.constant("weight", w / total, double)]))
    return _Out(g.op("Sum", terms), double=double)


_FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
            "ExtraTreesRegressor")  # fmt: skip


def _native(estimator: Any) -> bool:
    """Whether vigie's own converters handle ``estimator`` (else skl2onnx does)."""
    kind = type(estimator).__name__
    if kind == "VotingClassifier":
        return all(_native(m) for m in estimator.estimators_)
    return kind in (*_FORESTS, "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                    "IsolationForest")  # fmt: skip


def _double(estimator: Any) -> bool:
    """Whether the graph's input is float64 (histogram gradient boosting needs it)."""
    kind = type(estimator).__name__
    if kind == "VotingClassifier":
        return any(_double(m) for m in estimator.estimators_)
    return kind.startswith("HistGradientBoosting")


def _piece(g: _Graph, estimator: Any) -> _Out:
    """Add ``estimator`` to ``g``; returns its ``(n, k)`` output (probabilities, prediction or
    score)."""
    kind = type(estimator).__name__
    if kind in _FORESTS:
        return _forest(g, estimator, kind.endswith("Classifier"))
    if kind.startswith("HistGradientBoosting"):
        return _hist_gradient_boosting(g, estimator, kind.endswith("Classifier"))
    if kind == "IsolationForest":
        return _isolation_forest(g, estimator)
    if kind == "VotingClassifier":
        return _soft_vote(g, estimator)
    raise NotImplementedError(f"no native converter for {kind}")


def native_onnx(estimator: Any) -> bytes:
    """The graph of a tree ensemble (see :func:`to_onnx`): outputs ``label`` (int64 ``(n,)``)
    and ``probabilities`` for a classifier, ``variable`` for a regressor, ``score_samples`` for
    an isolation forest, each ``(n, k)``, float64 when the input is."""
    from onnx import TensorProto

    g = _Graph(double=_double(estimator))
    main = _piece(g, estimator)
    kind = _elem_type(main.double)
    n_features = int(estimator.n_features_in_)
    method = method_of(estimator)
    if method != PREDICT_PROBA:
        out = "variable" if method == PREDICT else SCORE_SAMPLES
        g.op("Identity", [main.name], out)
        return g.serialize(n_features, [(out, kind, [None, 1])])
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind not in "iub":
        raise NotImplementedError(f"classes {classes.tolist()} are not integers")
    g.op("Identity", [main.name], "probabilities")
    index = g.op("ArgMax", ["probabilities"], axis=1, keepdims=0)  # ties: the first, as numpy
    classes_name = g.name("classes")
    from onnx import numpy_helper

    g.initializers.append(numpy_helper.from_array(classes.astype(np.int64), classes_name))
    g.op("Gather", [classes_name, index], "label", axis=0)
    return g.serialize(
        n_features,
        [("label", TensorProto.INT64, [None]), ("probabilities", kind, [None, len(classes)])],
    )


def to_onnx(estimator: Any) -> bytes:
    """The serialized ONNX graph of a fitted estimator; its one input is named ``X``.

    Tree ensembles (random forests, extra trees, histogram gradient boosting, isolation forests,
    soft votes of those) use vigie's converters (:func:`native_onnx`), everything else skl2onnx.
    """
    if _native(estimator):
        return native_onnx(estimator)
    return _skl2onnx(estimator, int(estimator.n_features_in_))


# -------------------------------------------------------------------------------- agreement


def output_names(estimator: Any, method: str) -> list[str]:
    if method == PREDICT_PROBA:
        return [f"P({c})" for c in estimator.classes_]
    return [method if method == SCORE_SAMPLES else "prediction"]


def outputs(estimator: Any, method: str, x: np.ndarray) -> np.ndarray:
    """The estimator's (or predictor's) answer for ``method`` as a float64 ``(n, k)`` array."""
    out = np.asarray(getattr(estimator, method)(x), dtype=np.float64)
    return out.reshape(len(x), -1)


def max_abs_diff(estimator: Any, predictor: Any, method: str, rows: np.ndarray) -> dict[str, float]:
    """Largest ``|predictor - estimator|`` per output over ``rows``."""
    diff = np.abs(outputs(predictor, method, rows) - outputs(estimator, method, rows))
    worst = diff.max(axis=0) if len(rows) else np.zeros(diff.shape[1])
    return {name: float(v) for name, v in zip(output_names(estimator, method), worst, strict=True)}


def check_rows(rows: npt.ArrayLike, limit: int = MAX_CHECK_ROWS) -> np.ndarray:
    """At most ``limit`` rows, evenly spread over ``rows`` (first and last included)."""
    arr = np.asarray(rows, dtype=np.float64)
    if len(arr) > limit:
        arr = arr[np.linspace(0, len(arr) - 1, limit).round().astype(int)]
    return arr


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


# ---------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Part:
    """An inner estimator to compile and the rows its agreement is checked on.

    ``rows`` are the float64 rows the model feeds that estimator (e.g. the held-out slice's
    features); ``tolerance`` bounds ``|compiled - joblib|`` on every output, in ``unit``."""

    name: str
    estimator: Any
    rows: npt.ArrayLike
    tolerance: float
    unit: str = ""


@dataclass(frozen=True)
class CompiledPart:
    """What :func:`compile_parts` made of one :class:`Part`; ``onnx`` is None when refused."""

    name: str
    method: str
    estimator: str
    n_features: int
    tolerance: float
    unit: str
    rows_checked: int
    convert_s: float
    input_dtype: str | None = None  # float32 / float64, what the graph reads
    onnx: bytes | None = field(default=None, repr=False)
    max_abs_diff: dict[str, float] | None = None
    reason: str | None = None

    @property
    def published(self) -> bool:
        return self.onnx is not None


@dataclass(frozen=True)
class CompiledBundle:
    """The compiled parts of one model, to be written next to its joblib artifact.

    A service puts it in its card fields under ``compiled``; :meth:`ModelStore.publish
    <vigie.models.store.ModelStore.publish>` writes the files and the card section."""

    parts: list[CompiledPart]
    libraries: dict[str, str]
    build_time_s: float

    def file_name(self, part: str) -> str:
        return "model.onnx" if len(self.parts) == 1 else f"model.{part}.onnx"


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("skl2onnx", "onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def _refused(
    part: Part,
    method: str,
    reason: str,
    rows: int,
    seconds: float,
    diffs: dict[str, float] | None = None,
) -> CompiledPart:
    return CompiledPart(
        name=part.name,
        method=method,
        estimator=type(part.estimator).__name__,
        n_features=int(getattr(part.estimator, "n_features_in_", 0)),
        tolerance=part.tolerance,
        unit=part.unit,
        rows_checked=rows,
        convert_s=round(seconds, 3),
        max_abs_diff=diffs,
        reason=reason,
    )


def compile_part(part: Part) -> CompiledPart:
    """Convert one estimator, run both forms on its check rows, keep it within tolerance."""
    if not _NAME.match(part.name):
        raise ValueError(f"part name {part.name!r} must be 1-64 of A-Z a-z 0-9 _ -")
    started = time.perf_counter()
    method = method_of(part.estimator)
    rows = check_rows(part.rows)
    if not len(rows):
        return _refused(part, method, "no rows to check the compiled form on", 0, 0.0)
    try:
        data = to_onnx(part.estimator)
        n_features = int(part.estimator.n_features_in_)
        predictor = CompiledPredictor(part.name, data, method, n_features)
        diffs = max_abs_diff(part.estimator, predictor, method, rows)
    except Exception as exc:  # any converter or runtime failure leaves the joblib form in use
        message = " ".join(str(exc).split())[:300]
        reason = f"cannot compile {type(part.estimator).__name__}: {type(exc).__name__}: {message}"
        return _refused(part, method, reason, len(rows), time.perf_counter() - started)
    worst = max(diffs.values())
    seconds = time.perf_counter() - started
    if not worst <= part.tolerance:  # NaN is refused too
        reason = (
            f"max |compiled - joblib| {worst:.3g} {part.unit} on {len(rows)} check rows exceeds "
            f"the tolerance {part.tolerance:g}"
        )
        return _refused(part, method, reason, len(rows), seconds, diffs)
    return CompiledPart(
        name=part.name,
        method=method,
        estimator=type(part.estimator).__name__,
        n_features=n_features,
        tolerance=part.tolerance,
        unit=part.unit,
        rows_checked=len(rows),
        convert_s=round(seconds, 3),
        input_dtype=np.dtype(predictor.dtype).name,
        onnx=data,
        max_abs_diff=diffs,
    )


def compile_parts(
    parts: Sequence[Part], progress: Callable[[str], None] = lambda _m: None
) -> CompiledBundle:
    """Compile every part (see :func:`compile_part`); never raises for an estimator that cannot
    be compiled: that part is refused with the reason, and the service keeps its joblib form."""
    started = time.perf_counter()
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate part names in {names}")
    missing = [m for m in ("skl2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed at training"
        done = [_refused(p, method_of(p.estimator), reason, 0, 0.0) for p in parts]
    else:
        done = [compile_part(p) for p in parts]
    for c in done:
        if c.published:
            assert c.max_abs_diff is not None
            progress(
                f"compiled {c.name} ({c.estimator}) to ONNX in {c.convert_s:.1f} s: max |diff| "
                f"{max(c.max_abs_diff.values()):.2g} {c.unit} <= {c.tolerance:g} on "
                f"{c.rows_checked} rows"
            )
        else:
            message = f"NOT publishing the compiled form of {c.name}, it stays joblib: {c.reason}"
            progress(message)
            log.warning(message)
    return CompiledBundle(
        parts=done,
        libraries=library_versions(),
        build_time_s=round(time.perf_counter() - started, 3),
    )
