"""How the flare model of ``solar-flare`` is fitted and chosen (``vigie train``).

Candidates (:func:`candidates`)
-------------------------------
* ``logistic``: ``StandardScaler`` + ``LogisticRegression`` (L2, C = 1);
* ``hist_gradient_boosting``: ``HistGradientBoostingClassifier`` (depth 3, 300 iterations at
  0.03, 100 samples per leaf, L2 5) with monotone constraints (:data:`~.features.MONOTONIC`:
  more flux, flares and sunspots never lower the risk), early stopping off (its split is random);

each either as fitted (``raw``) or ``sigmoid``-calibrated: Platt scaling fitted on
*forward-chained* out-of-fold predictions (``TimeSeriesSplit``, 5 folds: every fold's model only
saw earlier days), the base model then refitted on all its rows. Calibration is monotone, so it
changes reliability (Brier) and the probability values, never the ranking (AUC, max TSS).

Validation and choice
---------------------
Time ordered: the last 20 % of the days validate; training ends :data:`GAP_DAYS` (27, one solar
rotation, so no 27-day feature window straddles the cut) before. Each candidate is fitted on the
training slice and scored on the validation slice, at the operating points of :mod:`.metrics`
(the max-TSS figures of X are kept in the card as ``max_tss`` / ``max_tss_threshold``; TSS at
max-TSS is optimistic by construction: the threshold is fitted to that slice).

The kept candidate maximises ``(TSS + BSS) / 2`` for >=M on the validation slice (the service's
main quantity; ties go to the simpler, earlier candidate). It is then refitted on all days;
reported metrics come from the validation fit. The same four metrics are given for persistence
(a flare of that class or above today means one tomorrow) and for climatology (the training
base rate every day).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.metrics import (
    OPERATING_POINT_RULES,
    baseline_scores,
    max_tss_threshold,
    operating_point,
    round4,
    scores,
    tss,
)
from vigie_services.solar_flare.modeling import (
    KEYS,
    FlareForecaster,
    PlattCalibrated,
    logit,
    probabilities,
    single_threaded,
)

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

VALIDATION_FRACTION = 0.2
GAP_DAYS = sm.WINDOW_DAYS
CALIBRATION_FOLDS = 5
MIN_ROWS = 200  # below this a time-ordered validation means nothing


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
        monotonic_cst=list(ft.MONOTONIC),
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
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(logit(oof[known])[:, None], y[known])
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    info = {
        "method": "sigmoid (Platt) on forward-chained out-of-fold predictions",
        "folds": CALIBRATION_FOLDS,
        "out_of_fold_days": int(known.sum()),
        "slope": round(slope, 4),
        "intercept": round(intercept, 4),
    }
    return PlattCalibrated(base, slope, intercept), info


def _objective(metrics: dict[str, float | None]) -> float:
    """Selection criterion: (TSS + BSS) / 2 for >=M (None counts as 0)."""
    return ((metrics["tss"] or 0.0) + (metrics["brier_skill_score"] or 0.0)) / 2


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
    x = ft.features(table)
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
    x_val = ft.features(val)
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
            per_class[key]["max_tss"] = round4(tss(y_val[key], probs[key] >= t_max))
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
