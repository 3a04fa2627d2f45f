"""Flare-probability models of the ``solar-flare`` service: training, scoring, evaluation.

Three binary targets for UTC day *d+1*: at least one flare >=C, >=M, and X (``c``, ``m``, ``x``;
columns of :data:`~vigie_services.solar_flare.summary.TARGETS`), one classifier each, all on the
same features (:func:`~vigie_services.solar_flare.summary.features`: log10 of peak fluxes, log1p
of flare counts, square roots of sunspot numbers, days since the last big flare clipped at 27).
No date or calendar feature: the service is judged on later years (a deep solar minimum among
them) where base rates are much lower, and the probabilities must follow the activity level.

Candidates (:func:`candidates`)
-------------------------------
* ``logistic``: ``StandardScaler`` + ``LogisticRegression`` (L2, C = 1);
* ``hist_gradient_boosting``: ``HistGradientBoostingClassifier`` (depth 3, 300 iterations at
  0.03, 100 samples per leaf, L2 5) with monotone constraints (:data:`~.summary.MONOTONIC`: more
  flux, flares and sunspots never lower the risk), early stopping off (its split is random);

each either as fitted (``raw``) or ``sigmoid``-calibrated: Platt scaling fitted on
*forward-chained* out-of-fold predictions (``TimeSeriesSplit``, 5 folds: every fold's model only
saw earlier days), the base model then refitted on all its rows. Calibration is monotone, so it
changes reliability (Brier) and the probability values, never the ranking (AUC, max TSS).

Validation and choice
---------------------
Time ordered: the last 20 % of the days validate; training ends :data:`GAP_DAYS` (27, one solar
rotation, so no 27-day feature window straddles the cut) before. Each candidate is fitted on the
training slice and scored on the validation slice. Operating points (probability thresholds,
``p >= t`` means "yes", rounded down to 4 decimals) are chosen on the validation slice: for >=C
and >=M the threshold of maximum TSS (:func:`max_tss_threshold`); for X the threshold of maximum
HSS (:func:`max_hss_threshold`), because X days are rare (about 2 %) and max TSS would put the
X threshold near 0.01, flagging about a third of the validation days (the max-TSS figures are
kept in the card as ``max_tss`` / ``max_tss_threshold``). The >=M and X points are the ALERTE
and CRITIQUE thresholds of the service; TSS and HSS are reported at these points (TSS at max-TSS
is optimistic by construction: the threshold is fitted to that slice).

The kept candidate maximises ``(TSS + BSS) / 2`` for >=M on the validation slice (the service's
main quantity; ties go to the simpler, earlier candidate). It is then refitted on all days;
reported metrics come from the validation fit. The same four metrics are given for persistence
(a flare of that class or above today means one tomorrow) and for climatology (the training
base rate every day).

Probabilities are made coherent after the per-class models: ``P(X) <= P(>=M) <= P(>=C)``.

Metrics
-------
TSS = TPR - FPR and HSS (Heidke, vs random) at the operating point, ROC AUC, and the Brier skill
score ``1 - BS / BS_ref`` where ``BS_ref`` is the Brier score of the TRAINING climatology (the
base rate of the rows the model was fitted on, stored in the model). A metric that is undefined
on a slice (AUC or TSS without a positive or a negative day) is ``None`` (JSON ``null``).

Compiled inference
------------------
Each class's fitted classifier (the base model under a Platt calibration) is compiled to ONNX
(:mod:`vigie.models.compiled`, parts ``c``, ``m``, ``x``, files ``model.<key>.onnx``); the Platt
transform, clipping and coherence stay numpy, for both forms. skl2onnx has no converter for our
:class:`PlattCalibrated` wrapper, and it needs none: ``sigmoid(a logit(p) + b)`` is two numpy
lines. ONNX Runtime computes the base P(1) in float32 (gradient boosting in float64, as
scikit-learn does): a class's compiled form is published only when ``|p_onnx - p_joblib| <=
COMPILED_TOLERANCE`` (1e-4) on every validation day (the card records the largest difference per
class under ``compiled``). Through the calibration a difference is multiplied by ``a q (1 - q) / (p
(1 - p))`` (``q`` the calibrated value), about ``a`` times ``q / p``: of order 1 for the fitted
slopes. Measured on ``daily_train.csv`` (gradient boosting, uncalibrated, run in float64 as in
scikit-learn): at most 1.7e-15 per class on every day (a logistic candidate would run in float32:
about 1e-7). A class without a compiled form is served by its joblib classifier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled
from vigie_services.solar_flare import summary as sm

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimators need them, never at import: a serving worker that loads the compiled serving
# artifact (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KEYS: tuple[str, ...] = ("c", "m", "x")
VALIDATION_FRACTION = 0.2
GAP_DAYS = sm.WINDOW_DAYS
CALIBRATION_FOLDS = 5
MIN_ROWS = 200  # below this a time-ordered validation means nothing
THRESHOLD_DECIMALS = 4
COMPILED_TOLERANCE = 1e-4  # max |P compiled - joblib| of a base classifier to publish it
_EPS = 1e-6


# HistGradientBoosting's OpenMP threads busy-wait; on the 2-core hosts we share with gunicorn
# workers and other training jobs, one thread is much faster (see transformer-temperature).
@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def single_threaded() -> Any:
    return _threadpools().limit(limits=1, user_api="openmp")


# ----------------------------------------------------------------------------------- models


@dataclass
class PlattCalibrated:
    """A fitted classifier whose P(1) goes through ``sigmoid(a * logit(p) + b)``."""

    base: Any
    slope: float = 1.0
    intercept: float = 0.0

    def predict_proba(self, x: FloatArray) -> FloatArray:
        p = self.base.predict_proba(x)[:, 1]
        q = _sigmoid(self.slope * _logit(p) + self.intercept)
        out: FloatArray = np.column_stack([1.0 - q, q])
        return out


def _logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, _EPS, 1 - _EPS)
    out: FloatArray = np.log(p / (1 - p))
    return out


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True)
class Candidate:
    name: str
    family: str
    calibration: str  # "raw" or "sigmoid"
    template: Any


def candidates() -> list[Candidate]:
    """The compared models, simplest first (ties keep the earlier)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    boosting = HistGradientBoostingClassifier(
        learning_rate=0.03,
        max_iter=300,
        max_depth=3,
        min_samples_leaf=100,
        l2_regularization=5.0,
        monotonic_cst=list(sm.MONOTONIC),
        early_stopping=False,
        random_state=0,
    )
    out = []
    for family, template in (("logistic", logistic), ("hist_gradient_boosting", boosting)):
        for calibration in ("raw", "sigmoid"):
            out.append(Candidate(f"{family}+{calibration}", family, calibration, template))
    return out


def _fit_one(candidate: Candidate, x: FloatArray, y: IntArray) -> tuple[Any, dict[str, Any]]:
    """One fitted classifier (``predict_proba``) for one target, and how it was calibrated."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TimeSeriesSplit

    if len(np.unique(y)) < 2:
        raise ValueError(
            "a target has a single class in the training rows; more days are needed "
            f"({int(y.sum())} positive of {len(y)})"
        )
    with single_threaded():
        base = clone(candidate.template).fit(x, y)
        if candidate.calibration == "raw":
            return base, {"method": "none"}
        oof = np.full(len(y), np.nan)
        for train_idx, test_idx in TimeSeriesSplit(n_splits=CALIBRATION_FOLDS).split(x):
            if len(np.unique(y[train_idx])) < 2:
                continue  # an early fold without a positive day cannot say anything
            fold = clone(candidate.template).fit(x[train_idx], y[train_idx])
            oof[test_idx] = fold.predict_proba(x[test_idx])[:, 1]
    known = ~np.isnan(oof)
    if known.sum() < 20 or len(np.unique(y[known])) < 2:
        return base, {"method": "none", "reason": "too few out-of-fold days to calibrate"}
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(oof[known])[:, None], y[known])
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    info = {
        "method": "sigmoid (Platt) on forward-chained out-of-fold predictions",
        "folds": CALIBRATION_FOLDS,
        "out_of_fold_days": int(known.sum()),
        "slope": round(slope, 4),
        "intercept": round(intercept, 4),
    }
    return PlattCalibrated(base, slope, intercept), info


@dataclass
class FlareForecaster:
    """The model in service: one classifier per class, its operating points and climatology."""

    candidate: str
    family: str
    calibration: str
    estimators: dict[str, Any]  # "c", "m", "x" -> fitted classifier with predict_proba
    thresholds: dict[str, float]  # operating point per class (probability)
    climatology: dict[str, float]  # base rate per class of the rows fitted on
    feature_names: list[str] = field(default_factory=lambda: list(sm.FEATURE_NAMES))

    # The vigie.models.compiled hook: one part per class, the classifier under any calibration.
    def compiled_parts(self) -> dict[str, Any]:
        return {
            k: est.base if isinstance(est, PlattCalibrated) else est
            for k, est in self.estimators.items()
        }

    def with_compiled(self, predictors: Mapping[str, Any]) -> FlareForecaster:
        estimators = dict(self.estimators)
        for k, predictor in predictors.items():
            est = estimators[k]
            estimators[k] = (
                dataclasses.replace(est, base=predictor)
                if isinstance(est, PlattCalibrated)
                else predictor
            )
        return dataclasses.replace(self, estimators=estimators)


def compiled_parts(model: FlareForecaster, check_rows: FloatArray) -> list[compiled.Part]:
    """What :func:`vigie.models.compiled.compile_parts` compiles: each class's base classifier,
    checked
    on ``check_rows`` (the validation days' features, :attr:`TrainingResult.check_rows`)."""
    return [
        compiled.Part(k, est, check_rows, COMPILED_TOLERANCE, "probability (before calibration)")
        for k, est in model.compiled_parts().items()
    ]


def _uses_openmp(estimator: Any) -> bool:
    base = estimator.base if isinstance(estimator, PlattCalibrated) else estimator
    return not compiled.is_compiled(base)


def probabilities(model: object, x: FloatArray) -> dict[str, FloatArray]:
    """Coherent probabilities per class for a feature matrix from :func:`summary.features`."""
    if not isinstance(model, FlareForecaster):
        raise TypeError(f"expected a FlareForecaster from fit(), got {type(model).__name__}")
    if model.feature_names != list(sm.FEATURE_NAMES):
        raise ValueError("the model was trained on other features than this code builds")
    # ONNX Runtime runs on one thread of its own: no OpenMP limit to set (~70 µs a call).
    openmp = any(_uses_openmp(e) for e in model.estimators.values())
    with single_threaded() if openmp else contextlib.nullcontext():
        raw = {k: np.asarray(model.estimators[k].predict_proba(x)[:, 1]) for k in KEYS}
    c = np.clip(raw["c"], 0.0, 1.0)
    m = np.minimum(np.clip(raw["m"], 0.0, 1.0), c)
    xx = np.minimum(np.clip(raw["x"], 0.0, 1.0), m)
    return {"c": c, "m": m, "x": xx}


def predict_table(model: object, table: pd.DataFrame) -> dict[str, FloatArray]:
    """Probabilities for a table of daily summaries (the CSV, or summaries from requests)."""
    return probabilities(model, sm.features(table))


# ---------------------------------------------------------------------------------- metrics


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


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def scores(
    y: IntArray, p: FloatArray, threshold: float, climatology: float
) -> dict[str, float | None]:
    """The four metrics of one class at one operating point, plus context."""
    yes = p >= threshold
    return {
        "tss": _r(tss(y, yes)),
        "hss": _r(hss(y, yes)),
        "roc_auc": _r(roc_auc(y, p)),
        "brier_skill_score": _r(brier_skill_score(y, p, climatology)),
        "brier_score": _r(float(np.mean((y - p) ** 2))),
        "threshold": threshold,
        "mean_probability": _r(float(np.mean(p))),
        "observed_rate": _r(float(np.mean(y))),
        "flagged_rate": _r(float(np.mean(yes))),
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


def _objective(metrics: dict[str, float | None]) -> float:
    """Selection criterion: (TSS + BSS) / 2 for >=M (None counts as 0)."""
    return ((metrics["tss"] or 0.0) + (metrics["brier_skill_score"] or 0.0)) / 2


# ------------------------------------------------------------------------------ evaluation


def evaluate(model: object, table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """design.md section 7 metrics on a table with the columns of ``daily_train.csv``.

    Per class: TSS and HSS at the model's operating point, ROC AUC, BSS against the training
    climatology stored in the model, and the persistence TSS on the same days. ``None`` where a
    metric is undefined on the slice (e.g. no X day: no AUC, no TSS).
    """
    if not isinstance(model, FlareForecaster):
        raise TypeError(f"expected a FlareForecaster from fit(), got {type(model).__name__}")
    if table.empty:
        raise ValueError("no rows to evaluate")
    probs = predict_table(model, table)
    out: dict[str, dict[str, float | None]] = {}
    for key in KEYS:
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


# -------------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    model: FlareForecaster
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    candidates: dict[str, Any]
    validation: dict[str, Any]
    hyperparameters: dict[str, Any]
    check_rows: FloatArray  # features of the validation days, to check the compiled form on


def split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Time-ordered split: training days, validation days (the last 20 %), a gap between."""
    n = len(table)
    if n < MIN_ROWS:
        raise ValueError(f"{n} days is too few for a time-ordered validation (need {MIN_ROWS})")
    val_start = n - math.ceil(n * VALIDATION_FRACTION)
    train_end = val_start - GAP_DAYS
    train, val = table.iloc[:train_end], table.iloc[val_start:]
    info = {
        "method": "time-ordered holdout: the last days validate, training ends a gap before",
        "validation_fraction": VALIDATION_FRACTION,
        "gap_days": GAP_DAYS,
        "train_start": f"{train['date'].iloc[0]:%Y-%m-%d}",
        "train_end": f"{train['date'].iloc[-1]:%Y-%m-%d}",
        "validation_start": f"{val['date'].iloc[0]:%Y-%m-%d}",
        "validation_end": f"{val['date'].iloc[-1]:%Y-%m-%d}",
        "train_days": len(train),
        "validation_days": len(val),
    }
    return train, val, info


def _fit_all(
    candidate: Candidate, table: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    x = sm.features(table)
    estimators, calibration, climatology = {}, {}, {}
    for key in KEYS:
        y = table[sm.TARGETS[key]].to_numpy(dtype=np.int64)
        estimators[key], calibration[key] = _fit_one(candidate, x, y)
        climatology[key] = float(np.mean(y))
    return estimators, calibration, climatology


def _describe(template: Any) -> dict[str, Any]:
    steps = [step for _, step in template.steps] if hasattr(template, "steps") else [template]
    params = {
        k: v for k, v in steps[-1].get_params().items() if isinstance(v, int | float | str | list)
    }
    return {"steps": [type(step).__name__ for step in steps], "params": params}


def fit(table: pd.DataFrame, progress: Callable[[str], None] = lambda _m: None) -> TrainingResult:
    """Compare the candidates on the time-ordered validation slice, keep one, refit on all."""
    train, val, info = split(table)
    progress(
        f"train {info['train_start']} -> {info['train_end']} ({info['train_days']} days), "
        f"validation {info['validation_start']} -> {info['validation_end']} "
        f"({info['validation_days']} days, {GAP_DAYS}-day gap)"
    )
    x_val = sm.features(val)
    y_val = {k: val[sm.TARGETS[k]].to_numpy(dtype=np.int64) for k in KEYS}

    compared: dict[str, Any] = {}
    objective: dict[str, float] = {}
    climatology = {k: float(train[sm.TARGETS[k]].mean()) for k in KEYS}
    for cand in candidates():
        progress(f"fitting {cand.name} ({len(train)} days, 3 classes)")
        estimators, calibration, _ = _fit_all(cand, train)
        interim = FlareForecaster(
            cand.name, cand.family, cand.calibration, estimators, {k: 0.5 for k in KEYS},
            climatology,
        )  # fmt: skip
        probs = probabilities(interim, x_val)
        per_class: dict[str, Any] = {}
        for key in KEYS:
            t = operating_point(key, y_val[key], probs[key], climatology[key])
            per_class[key] = scores(y_val[key], probs[key], t, climatology[key])
            t_max = max_tss_threshold(y_val[key], probs[key], climatology[key])
            per_class[key]["max_tss"] = _r(tss(y_val[key], probs[key] >= t_max))
            per_class[key]["max_tss_threshold"] = t_max
        objective[cand.name] = _objective(per_class["m"])
        compared[cand.name] = {
            "family": cand.family,
            "calibration": calibration,
            "estimator": _describe(cand.template),
            "metrics": per_class,
            "selection_score": round(objective[cand.name], 4),
        }
        m = per_class["m"]
        progress(
            f"{cand.name}: >=M TSS {m['tss']} HSS {m['hss']} AUC {m['roc_auc']} "
            f"BSS {m['brier_skill_score']} (threshold {m['threshold']})"
        )

    chosen = max(objective, key=lambda name: (objective[name], -list(objective).index(name)))
    chosen_cand = next(c for c in candidates() if c.name == chosen)
    metrics = compared[chosen]["metrics"]
    baselines = {key: baseline_scores(val, y_val[key], key, climatology[key]) for key in KEYS}
    for key in KEYS:
        gain = (metrics[key]["tss"] or 0.0) - (baselines[key]["persistence"]["tss"] or 0.0)
        progress(
            f"{chosen} {sm.TARGET_LABELS[key]}: TSS {metrics[key]['tss']} "
            f"(persistence {baselines[key]['persistence']['tss']}, {gain:+.3f}), "
            f"BSS {metrics[key]['brier_skill_score']}"
        )

    progress(f"refitting {chosen} on all {len(table)} days")
    estimators, calibration, all_climatology = _fit_all(chosen_cand, table)
    thresholds = {key: float(metrics[key]["threshold"]) for key in KEYS}
    final = FlareForecaster(
        chosen, chosen_cand.family, chosen_cand.calibration, estimators, thresholds,
        all_climatology,
    )  # fmt: skip
    hyperparameters = {
        "chosen_candidate": chosen,
        "model_family": chosen_cand.family,
        "calibration": chosen_cand.calibration,
        "final_calibration": calibration,
        "estimator": compared[chosen]["estimator"],
        "selection": "max over candidates of (TSS + BSS) / 2 for >=M on the validation slice",
        "operating_points": {
            sm.TARGET_LABELS[k]: f"{rule.replace('_', '-').upper()} probability threshold on "
            "the validation slice"
            for k, rule in OPERATING_POINT_RULES.items()
        },
        "one_classifier_per_class": list(sm.TARGETS.values()),
        "coherence": "P(X) <= P(>=M) <= P(>=C) enforced after the per-class models",
    }
    return TrainingResult(
        model=final,
        metrics=metrics,
        baselines=baselines,
        candidates=compared,
        validation={
            **info,
            "climatology_train_slice": {k: round(v, 4) for k, v in climatology.items()},
        },
        hyperparameters=hyperparameters,
        check_rows=x_val,
    )
