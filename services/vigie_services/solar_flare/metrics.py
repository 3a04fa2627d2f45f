"""The skill of flare probabilities: TSS, HSS, ROC AUC, Brier skill, operating points.

TSS = TPR - FPR and HSS (Heidke, vs random) at the operating point, ROC AUC, and the Brier skill
score ``1 - BS / BS_ref`` where ``BS_ref`` is the Brier score of the TRAINING climatology (the
base rate of the rows the model was fitted on, stored in the model). A metric that is undefined
on a slice (AUC or TSS without a positive or a negative day) is ``None`` (JSON ``null``).

Operating points (probability thresholds, ``p >= t`` means "yes", rounded down to
:data:`THRESHOLD_DECIMALS` decimals) are chosen on the validation slice: for >=C and >=M the
threshold of maximum TSS (:func:`max_tss_threshold`); for X the threshold of maximum HSS
(:func:`max_hss_threshold`), because X days are rare (about 2 %) and max TSS would put the X
threshold near 0.01, flagging about a third of the validation days. The >=M and X points are the
ALERTE and CRITIQUE thresholds of the service.

:func:`evaluate` gives design.md's metrics (section 7) of a model on a table of days.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

THRESHOLD_DECIMALS = 4


def _contingency(y: IntArray, yes: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    pos = y == 1
    tp = int(np.sum(yes & pos))
    fn = int(np.sum(~yes & pos))
    fp = int(np.sum(yes & ~pos))
    tn = int(np.sum(~yes & ~pos))
    return tp, fn, fp, tn


def tss(y: IntArray, yes: npt.NDArray[np.bool_]) -> float | None:
    """True skill statistic TPR - FPR; None without a positive or a negative day."""
    tp, fn, fp, tn = _contingency(y, yes)
    if tp + fn == 0 or fp + tn == 0:
        return None
    return tp / (tp + fn) - fp / (fp + tn)


def hss(y: IntArray, yes: npt.NDArray[np.bool_]) -> float | None:
    """Heidke skill score (vs random forecasts); None when its denominator is 0."""
    tp, fn, fp, tn = _contingency(y, yes)
    denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    if denominator == 0:
        return None
    return 2.0 * (tp * tn - fn * fp) / denominator


def roc_auc(y: IntArray, p: FloatArray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def brier_skill_score(y: IntArray, p: FloatArray, climatology: float) -> float | None:
    """``1 - BS / BS_ref``, the reference being the constant forecast ``climatology``."""
    reference = float(np.mean((y - climatology) ** 2))
    if reference == 0:
        return None
    return 1.0 - float(np.mean((y - p) ** 2)) / reference


def max_tss_threshold(y: IntArray, p: FloatArray, fallback: float) -> float:
    """The probability threshold (``p >= t`` means yes) of maximum TSS on (y, p).

    Rounded down to :data:`THRESHOLD_DECIMALS` so that the rounded threshold keeps every day the
    exact one flagged. Without a positive or a negative day, ``fallback`` (the climatology).
    """
    if len(np.unique(y)) < 2:
        return round(fallback, THRESHOLD_DECIMALS)
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y, p)
    finite = np.isfinite(thresholds)
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    scale = 10**THRESHOLD_DECIMALS
    return math.floor(float(thresholds[best]) * scale) / scale


def max_hss_threshold(y: IntArray, p: FloatArray, fallback: float) -> float:
    """The probability threshold (``p >= t`` means yes) of maximum HSS on (y, p), rounded down.

    HSS, unlike TSS, charges false alarms by how common the event is, so for a rare class
    (X flares: about 2 % of days) it picks a far higher, less noisy threshold than max TSS.
    """
    if len(np.unique(y)) < 2:
        return round(fallback, THRESHOLD_DECIMALS)
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    positives, negatives = float(np.sum(y == 1)), float(np.sum(y != 1))
    tp, fp = tpr * positives, fpr * negatives
    fn, tn = positives - tp, negatives - fp
    denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    with np.errstate(divide="ignore", invalid="ignore"):
        heidke = np.where(denominator > 0, 2 * (tp * tn - fn * fp) / denominator, -np.inf)
    heidke = np.where(np.isfinite(thresholds), heidke, -np.inf)
    best = int(np.argmax(heidke))
    scale = 10**THRESHOLD_DECIMALS
    return math.floor(float(thresholds[best]) * scale) / scale


# Which rule picks each class's operating point on the validation slice.
OPERATING_POINT_RULES: dict[str, str] = {"c": "max_tss", "m": "max_tss", "x": "max_hss"}
_RULES = {"max_tss": max_tss_threshold, "max_hss": max_hss_threshold}


def operating_point(key: str, y: IntArray, p: FloatArray, fallback: float) -> float:
    return _RULES[OPERATING_POINT_RULES[key]](y, p, fallback)


def round4(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def scores(
    y: IntArray, p: FloatArray, threshold: float, climatology: float
) -> dict[str, float | None]:
    """The four metrics of one class at one operating point, plus context."""
    yes = p >= threshold
    return {
        "tss": round4(tss(y, yes)),
        "hss": round4(hss(y, yes)),
        "roc_auc": round4(roc_auc(y, p)),
        "brier_skill_score": round4(brier_skill_score(y, p, climatology)),
        "brier_score": round4(float(np.mean((y - p) ** 2))),
        "threshold": threshold,
        "mean_probability": round4(float(np.mean(p))),
        "observed_rate": round4(float(np.mean(y))),
        "flagged_rate": round4(float(np.mean(yes))),
    }


def baseline_scores(
    table: pd.DataFrame, y: IntArray, key: str, climatology: float
) -> dict[str, dict[str, float | None]]:
    """Persistence and climatology on the same days, with the same metrics."""
    persist = sm.persistence(table, key).astype(np.float64)
    clim = np.full(len(y), climatology)
    return {
        "persistence": scores(y, persist, 0.5, climatology),
        "climatology": scores(y, clim, round(climatology, THRESHOLD_DECIMALS), climatology),
    }


# ------------------------------------------------------------------------------ evaluation


def evaluate(model: object, table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """design.md section 7 metrics on a table with the columns of ``daily_train.csv``.

    Per class: TSS and HSS at the model's operating point, ROC AUC, BSS against the training
    climatology stored in the model, and the persistence TSS on the same days. ``None`` where a
    metric is undefined on the slice (e.g. no X day: no AUC, no TSS).
    """
    if not isinstance(model, md.FlareForecaster):
        raise TypeError(f"expected a FlareForecaster from fit(), got {type(model).__name__}")
    if table.empty:
        raise ValueError("no rows to evaluate")
    probs = md.predict_table(model, table)
    out: dict[str, dict[str, float | None]] = {}
    for key in md.KEYS:
        y = table[sm.TARGETS[key]].to_numpy(dtype=np.int64)
        p = probs[key]
        yes = p >= model.thresholds[key]
        out[key] = {
            "tss": _f(tss(y, yes)),
            "hss": _f(hss(y, yes)),
            "roc_auc": _f(roc_auc(y, p)),
            "brier_skill_score": _f(brier_skill_score(y, p, model.climatology[key])),
            "persistence_tss": _f(tss(y, sm.persistence(table, key))),
        }
    return out


def _f(value: float | None) -> float | None:
    return None if value is None else float(value)
