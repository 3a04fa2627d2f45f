"""The metrics of the ``gamma-classifier`` (design.md section 7), gamma being the positive class.

:func:`scores`: ``accuracy`` and ``f1`` at P(gamma) >= 0.5, i.e. the usual classification
accuracy for the class mix of the simulated data; ``roc_auc``; and ``tpr_at_fpr_<x>``, the
largest gamma efficiency (true-positive rate) of any cut whose hadron false-positive rate is at
most ``x``, for x = 1 %, 5 %, 10 %. :func:`scores_at` scores one operating cut.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

METRIC_KEYS = ("accuracy", "f1", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "tpr_at_fpr_0.1")
FPR_POINTS = (0.01, 0.05, 0.1)
DECISION_THRESHOLD = 0.5  # for accuracy and F1 (see the module docstring)

# scikit-learn is imported in the functions: serving workers import this package without it.


def tpr_at_fpr(y: npt.ArrayLike, p: npt.ArrayLike, max_fpr: float) -> float:
    """Largest gamma efficiency of a cut on ``p`` whose hadron false-positive rate <= max_fpr."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def scores(y: npt.ArrayLike, p: npt.ArrayLike) -> dict[str, float]:
    """The metrics of design.md section 7 (gamma positive; accuracy/F1 at P >= 0.5)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y_arr = np.asarray(y)
    p_arr = np.asarray(p, dtype=np.float64)
    if len(np.unique(y_arr)) < 2:
        raise ValueError("need events of both classes (g and h) to score")
    decided = (p_arr >= DECISION_THRESHOLD).astype(int)
    out = {
        "accuracy": float(accuracy_score(y_arr, decided)),
        "f1": float(f1_score(y_arr, decided, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y_arr, p_arr)),
    }
    for x in FPR_POINTS:
        out[f"tpr_at_fpr_{x}"] = tpr_at_fpr(y_arr, p_arr, x)
    return out


def scores_at(y: npt.ArrayLike, p: npt.ArrayLike, threshold: float) -> dict[str, float]:
    """Accuracy, F1, hadron FPR and gamma efficiency of the cut ``p >= threshold``."""
    from sklearn.metrics import accuracy_score, f1_score

    y_arr = np.asarray(y)
    decided = (np.asarray(p) >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(y_arr, decided)),
        "f1": float(f1_score(y_arr, decided, zero_division=0.0)),
        "hadron_fpr": float(decided[y_arr == 0].mean()),
        "gamma_efficiency": float(decided[y_arr == 1].mean()),
    }
