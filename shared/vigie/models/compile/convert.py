"""The ONNX graph of a fitted estimator (:func:`to_onnx`): vigie's tree converters
(:mod:`vigie.models.compile.trees`) for tree ensembles, skl2onnx for the rest (linear pipelines:
``StandardScaler`` + ``Ridge`` / ``LogisticRegression``), without ZipMap so probabilities come
back as an array. skl2onnx's opsets are pinned (:data:`OPSET`); it is imported when it converts.
"""

from __future__ import annotations

from typing import Any

from vigie.models.compile.graph import INPUT
from vigie.models.compile.trees import is_native, native_onnx

OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}  # skl2onnx graphs (linear models)


def to_onnx(estimator: Any) -> bytes:
    """The serialized ONNX graph of a fitted estimator; its one input is named ``X``.

    Tree ensembles (random forests, extra trees, histogram gradient boosting, isolation forests,
    soft votes of those) use vigie's converters (:func:`~vigie.models.compile.trees.native_onnx`),
    everything else skl2onnx.
    """
    if is_native(estimator):
        return native_onnx(estimator)
    return skl2onnx_graph(estimator, int(estimator.n_features_in_))


def skl2onnx_graph(estimator: Any, n_features: int) -> bytes:
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
