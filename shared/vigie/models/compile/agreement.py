"""How close the compiled form is to the joblib estimator: both run on the service's check rows
(held-out or validation rows, at most :data:`MAX_CHECK_ROWS`, :func:`check_rows`) and the largest
absolute difference of each output is recorded (:func:`max_abs_diff`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.models.compiled import PREDICT, PREDICT_PROBA, SCORE_SAMPLES

MAX_CHECK_ROWS = 2000


def method_of(estimator: Any) -> str:
    """Which method of ``estimator`` the compiled form reproduces."""
    from sklearn.base import is_classifier
    from sklearn.ensemble import IsolationForest

    if isinstance(estimator, IsolationForest):
        return SCORE_SAMPLES
    return PREDICT_PROBA if is_classifier(estimator) else PREDICT


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
