"""The ONNX graphs vigie builds itself: a graph under construction (:class:`Graph`) and the
ai.onnx.ml opset 5 ``TreeEnsemble`` node of a tree ensemble (:class:`Ensemble`).

Opsets are pinned: :data:`NATIVE_OPSET` (IR :data:`NATIVE_IR_VERSION`), what onnxruntime >= 1.20
runs. ``onnx`` is imported where a graph is built, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

INPUT = "X"  # the one input of every compiled graph
NATIVE_OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 5}  # TreeEnsemble (onnxruntime >= 1.20)
NATIVE_IR_VERSION = 10  # the IR version of opset 21


def float32_floor(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value: ``float32(x) <= t`` iff ``float32(x) <=
    floor32(t)``, so a compiled tree takes scikit-learn's branch for every float32 input."""
    out = values.astype(np.float32)
    over = out.astype(np.float64) > values
    out[over] = np.nextafter(out[over], np.float32(-np.inf))
    return out


@dataclass
class Graph:
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
            self.op("Cast", [INPUT], name, to=elem_type(double))
        return name

    def serialize(self, n_features: int, outputs: list[tuple[str, int, list[Any]]]) -> bytes:
        import onnx
        from onnx import helper

        graph = helper.make_graph(
            self.nodes,
            "vigie_compiled",
            [helper.make_tensor_value_info(INPUT, elem_type(self.double), [None, n_features])],
            [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid(domain, v) for domain, v in NATIVE_OPSET.items()],
            producer_name="vigie.models.compile",
            ir_version=NATIVE_IR_VERSION,  # onnx's default may be newer than onnxruntime reads
        )
        onnx.checker.check_model(model)
        data: bytes = model.SerializeToString()
        return data


def elem_type(double: bool) -> int:
    from onnx import TensorProto

    return int(TensorProto.DOUBLE if double else TensorProto.FLOAT)


@dataclass
class Ensemble:
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

    def build(self, g: Graph, base: npt.ArrayLike | None = None) -> str:
        """The node in ``g`` (plus ``base`` added); returns its ``(n, n_targets)`` output."""
        from onnx import numpy_helper

        n = {k: np.concatenate(v) for k, v in self.nodes.items()}
        dtype = np.float64 if self.double else np.float32
        splits = n["split"] if self.double else float32_floor(n["split"])
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
class Out:
    """A piece's output tensor: ``(n, k)``, float64 when ``double``."""

    name: str
    double: bool
