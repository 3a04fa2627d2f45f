"""Compiling fitted scikit-learn estimators to ONNX, at training time (``vigie train``).

Why
---
A scikit-learn forest spends milliseconds of Python per call whatever the number of rows (one
``tree.apply`` per tree, input validation, an OpenMP thread-pool limit); the same forest compiled
to ONNX Runtime answers a single row in microseconds. The joblib model stays the reference: it is
what ``vigie evaluate`` scores, and the compiled form is published only when it agrees with it.
Serving the compiled form is :mod:`vigie.models.compiled`; serving workers never import this
package (nor ``onnx`` / ``skl2onnx``), so a service's modules import it where they train.

What is compiled
----------------
A service's model wraps fitted estimators (one per horizon or target, a calibration, an online
correction, ...). Its model class declares the inner estimators worth compiling and how to put a
predictor in their place (:class:`vigie.models.compiled.Compilable`); the service turns them
into :class:`Part` s (estimator, check rows, tolerance) and :func:`compile_parts` compiles them.

* Tree ensembles use vigie's converters (:mod:`~vigie.models.compile.trees`): random forests and
  extra trees, histogram gradient boosting (regression with an identity link, binary
  classification), ``IsolationForest.score_samples`` and soft votes of those, each as one
  ai.onnx.ml opset 5 ``TreeEnsemble`` node (graph building: :mod:`~vigie.models.compile.graph`).
* skl2onnx converts the rest (:mod:`~vigie.models.compile.convert`): linear pipelines
  (``StandardScaler`` + ``Ridge`` / ``LogisticRegression``), without ZipMap.

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

:func:`compile_parts` runs both forms on the service's check rows (held-out or validation rows,
at most :data:`MAX_CHECK_ROWS`; :mod:`~vigie.models.compile.agreement`) and records the largest
absolute difference of each output. A part whose difference exceeds its tolerance (declared by
the service, documented in its model module) is not published (logged, and the card says why):
the service keeps the joblib estimator for it. The files and card entries the store writes are
:mod:`~vigie.models.compile.bundle`.
"""

from vigie.models.compile.agreement import MAX_CHECK_ROWS, check_rows, max_abs_diff, method_of
from vigie.models.compile.bundle import CompiledBundle, CompiledPart
from vigie.models.compile.convert import to_onnx
from vigie.models.compile.parts import Part, compile_part, compile_parts

__all__ = [
    "MAX_CHECK_ROWS",
    "CompiledBundle",
    "CompiledPart",
    "Part",
    "check_rows",
    "compile_part",
    "compile_parts",
    "max_abs_diff",
    "method_of",
    "to_onnx",
]
