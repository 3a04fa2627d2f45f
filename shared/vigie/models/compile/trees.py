"""vigie's converters of tree ensembles: random forests and extra trees, histogram gradient
boosting (regression with an identity link, binary classification), ``IsolationForest.
score_samples`` and soft votes of those, each as one ai.onnx.ml opset 5 ``TreeEnsemble`` node
(plus a sigmoid, a weighted mean or ``-2 ** -x``).

They convert in about a second where skl2onnx took up to 20 s (its isolation forest makes ~27
nodes per tree: 6 ms per call, slower than scikit-learn), keep scikit-learn's comparisons exact
(see :mod:`vigie.models.compile`), and opset 5 stores a tree ensemble compactly (the energy
forest's session: +83 MB instead of +376 MB with skl2onnx's opset-3 ``TreeEnsembleRegressor``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigie.models.compile.agreement import method_of
from vigie.models.compile.graph import Ensemble, Graph, Out, elem_type
from vigie.models.compiled import PREDICT, PREDICT_PROBA, SCORE_SAMPLES


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """scikit-learn's ``average_path_length``: expected depth of an unsuccessful search in a
    binary search tree of ``n`` samples (0 for n <= 1, 1 for n = 2)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _forest(g: Graph, forest: Any, classifier: bool) -> Out:
    """Random forest / extra trees: the mean of the trees' leaf values (class fractions for a
    classifier; P(0) = 1 - P(1) for two classes); float32, as scikit-learn's trees compare
    ``float32(x)``."""
    if forest.n_outputs_ != 1:
        raise NotImplementedError("multi-output forests are not compiled")
    k = len(forest.classes_) if classifier else 1
    scored = [1] if k == 2 else list(range(k))
    ensemble = Ensemble(double=False, n_targets=len(scored))
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
    return Out(out, double=False)


def _hist_gradient_boosting(g: Graph, estimator: Any, classifier: bool) -> Out:
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
    ensemble = Ensemble(double=True, n_targets=1)
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
        return Out(raw, double=True)
    p1 = g.op("Sigmoid", [raw])
    p0 = g.op("Sub", [g.constant("one", 1.0, True), p1])
    return Out(g.op("Concat", [p0, p1], axis=1), double=True)


def _isolation_forest(g: Graph, forest: Any) -> Out:
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
    ensemble = Ensemble(double=False, n_targets=1)
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
    return Out(g.op("Neg", [anomaly]), double=False)


def _soft_vote(g: Graph, vote: Any) -> Out:
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
            name = g.op("Cast", [name], to=elem_type(double))
        terms.append(g.op("Mul", [name, g.constant("weight", w / total, double)]))
    return Out(g.op("Sum", terms), double=double)


_FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
            "ExtraTreesRegressor")  # fmt: skip


def is_native(estimator: Any) -> bool:
    """Whether vigie's own converters handle ``estimator`` (else skl2onnx does)."""
    kind = type(estimator).__name__
    if kind == "VotingClassifier":
        return all(is_native(m) for m in estimator.estimators_)
    return kind in (*_FORESTS, "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                    "IsolationForest")  # fmt: skip


def _is_double(estimator: Any) -> bool:
    """Whether the graph's input is float64 (histogram gradient boosting needs it)."""
    kind = type(estimator).__name__
    if kind == "VotingClassifier":
        return any(_is_double(m) for m in estimator.estimators_)
    return kind.startswith("HistGradientBoosting")


def _piece(g: Graph, estimator: Any) -> Out:
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

    g = Graph(double=_is_double(estimator))
    main = _piece(g, estimator)
    kind = elem_type(main.double)
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
