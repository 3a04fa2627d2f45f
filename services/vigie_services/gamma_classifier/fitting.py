"""How the ``gamma-classifier`` model is chosen and fitted (:func:`fit`).

Validation: a stratified 20 % slice of the training file is held out (``HOLDOUT_FRACTION``,
seed 0). On the remaining 80 % (the development set) every candidate of :mod:`.candidates` is
scored by stratified 5-fold cross-validation (shuffled, seed 0; the soft vote's fold scores are
the mean of its members' fold scores, which is what the fitted vote computes). The candidate
with the highest mean cross-validated ROC AUC is kept (ROC AUC because the service ranks events
for a cut at a chosen hadron rate, and it does not depend on the class mix of the simulated
data). Every candidate is then fitted on the whole development set and scored once on the
held-out slice: those are the model card's figures (metrics of :mod:`.metrics`). The kept
candidate is finally refitted on all the rows; its operating cuts (:mod:`.operating_point`) are
cut from its out-of-fold scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie_services.gamma_classifier.candidates import (
    CANDIDATES,
    SEED,
    VOTES,
    base_candidates,
    describe,
    make_estimator,
)
from vigie_services.gamma_classifier.classifier import GammaModel, single_threaded
from vigie_services.gamma_classifier.features import COLUMNS, FEATURES, features, raw_values
from vigie_services.gamma_classifier.metrics import FPR_POINTS, scores, scores_at
from vigie_services.gamma_classifier.operating_point import DEFAULT_HADRON_FPR, operating_point

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOLDOUT_FRACTION = 0.2
CV_FOLDS = 5
MIN_EVENTS_PER_CLASS = 50


def _fit_proba(name: str, x_fit: FloatArray, y_fit: IntArray, x_score: FloatArray) -> FloatArray:
    from sklearn.base import clone

    with single_threaded():
        est = clone(make_estimator(name)).fit(x_fit, y_fit)
        return np.asarray(est.predict_proba(x_score)[:, 1], dtype=np.float64)


@dataclass
class TrainingResult:
    """Everything :func:`fit` produces; ``model`` is what :func:`.classifier.p_gamma` needs."""

    model: GammaModel
    chosen: str
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    validation: dict[str, Any]
    hyperparameters: dict[str, Any]
    baselines: dict[str, Any]
    features: list[dict[str, str]]
    check_rows: FloatArray  # features of the held-out slice, to check the compiled form on


def _check_training_set(y: IntArray) -> None:
    n_g, n_h = int(y.sum()), int(len(y) - y.sum())
    if min(n_g, n_h) < MIN_EVENTS_PER_CLASS:
        raise ValueError(
            f"need at least {MIN_EVENTS_PER_CLASS} events of each class to train and validate, "
            f"got {n_g} gamma and {n_h} hadron"
        )


def _mean_std(per_fold: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = per_fold[0].keys()
    mean = {k: float(np.mean([f[k] for f in per_fold])) for k in keys}
    std = {k: float(np.std([f[k] for f in per_fold])) for k in keys}
    return mean, std


def fit(
    values: npt.ArrayLike, y: npt.ArrayLike, progress: Callable[[str], None] = lambda _m: None
) -> TrainingResult:
    """Compare the candidates, keep the best by cross-validated ROC AUC, refit it on all rows."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, train_test_split

    raw = raw_values(values)
    labels = np.asarray(y, dtype=np.int64)
    if set(np.unique(labels)) - {0, 1}:
        raise ValueError("labels must be 0 (hadron) or 1 (gamma)")
    _check_training_set(labels)
    x_all = features(raw)
    idx_dev, idx_hold = train_test_split(
        np.arange(len(labels)), test_size=HOLDOUT_FRACTION, stratify=labels, random_state=SEED
    )
    x_dev, y_dev, x_hold, y_hold = (
        x_all[idx_dev],
        labels[idx_dev],
        x_all[idx_hold],
        labels[idx_hold],
    )
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=SEED).split(x_dev, y_dev))
    progress(
        f"{len(labels)} events ({int(labels.sum())} gamma): development {len(y_dev)}, held out "
        f"{len(y_hold)}; {CV_FOLDS}-fold stratified cross-validation on the development set"
    )

    oof: dict[str, FloatArray] = {}
    hold: dict[str, FloatArray] = {}
    fit_time: dict[str, float] = {}
    for name in base_candidates():
        started = time.perf_counter()
        scores_oof = np.empty(len(y_dev))
        for train_i, test_i in folds:
            scores_oof[test_i] = _fit_proba(name, x_dev[train_i], y_dev[train_i], x_dev[test_i])
        oof[name] = scores_oof
        hold[name] = _fit_proba(name, x_dev, y_dev, x_hold)
        fit_time[name] = time.perf_counter() - started
        progress(f"{name}: cross-validated and held-out scores in {fit_time[name]:.1f} s")
    for name, members in VOTES.items():
        oof[name] = np.mean([oof[m] for m in members], axis=0)
        hold[name] = np.mean([hold[m] for m in members], axis=0)
        fit_time[name] = sum(fit_time[m] for m in members)

    candidates: dict[str, dict[str, Any]] = {}
    for name in CANDIDATES:
        per_fold = [scores(y_dev[test_i], oof[name][test_i]) for _, test_i in folds]
        cv_mean, cv_std = _mean_std(per_fold)
        op = operating_point(oof[name][y_dev == 0], oof[name][y_dev == 1], DEFAULT_HADRON_FPR)
        candidates[name] = {
            "cross_validation": cv_mean,
            "cross_validation_std": cv_std,
            "holdout": scores(y_hold, hold[name]),
            "holdout_at_operating_point": {
                "probability_threshold": op.threshold,
                **scores_at(y_hold, hold[name], op.threshold),
            },
            "cv_and_holdout_fit_time_s": round(fit_time[name], 2),
        }
        progress(
            f"{name}: CV ROC AUC {cv_mean['roc_auc']:.4f} ± {cv_std['roc_auc']:.4f}, "
            f"accuracy {cv_mean['accuracy']:.4f}; held out: ROC AUC "
            f"{candidates[name]['holdout']['roc_auc']:.4f}, accuracy "
            f"{candidates[name]['holdout']['accuracy']:.4f}"
        )

    chosen = max(CANDIDATES, key=lambda n: candidates[n]["cross_validation"]["roc_auc"])
    hadron_oof = np.sort(oof[chosen][y_dev == 0])
    gamma_oof = np.sort(oof[chosen][y_dev == 1])
    points = {x: operating_point(hadron_oof, gamma_oof, x) for x in FPR_POINTS}
    default = points[DEFAULT_HADRON_FPR]
    if not default.gamma_efficiency > default.hadron_fpr:
        raise ValueError(f"{chosen} does not separate the classes at the operating point")

    progress(f"keeping {chosen}; refitting it on all {len(labels)} events")
    started = time.perf_counter()
    with single_threaded():
        final = clone(make_estimator(chosen)).fit(x_all, labels)
    progress(f"refit in {time.perf_counter() - started:.1f} s")
    model = GammaModel(
        family=chosen, estimator=final, hadron_scores=hadron_oof, gamma_scores=gamma_oof
    )

    hold_alpha = 1.0 - raw[idx_hold, COLUMNS.index("fAlpha")] / 90.0
    baselines = {
        "prior": scores(y_hold, np.full(len(y_hold), float(y_dev.mean()))),
        "alpha_only": scores(y_hold, hold_alpha),
    }
    thresholds = {
        "operating_point": {
            **default.as_dict(),
            "holdout": scores_at(y_hold, hold[chosen], default.threshold),
        },
        "operating_points": {
            f"hadron_fpr_{x}": {
                **p.as_dict(),
                "holdout": scores_at(y_hold, hold[chosen], p.threshold),
            }
            for x, p in points.items()
        },
        "rule": (
            "an event is gamma when P(gamma) >= probability_threshold (cut for the target hadron "
            "FPR on out-of-fold validation scores; hadron_fpr/gamma_efficiency measured there). "
            "Batch level: Li & Ma (1983) eq. 17 significance of the gamma excess, CRITIQUE when "
            ">= critique_sigma, ALERTE when >= alerte_sigma; VIGIE_ASSET_CONFIG overrides "
            "hadron_fpr, alerte_sigma and critique_sigma per asset"
        ),
    }
    validation = {
        "method": (
            f"stratified {HOLDOUT_FRACTION:.0%} held-out slice; stratified {CV_FOLDS}-fold "
            "cross-validation on the rest for model selection (mean ROC AUC) and the operating "
            "cut; held-out figures from each candidate fitted on the whole rest"
        ),
        "seed": SEED,
        "cv_folds": CV_FOLDS,
        "holdout_fraction": HOLDOUT_FRACTION,
        "development_events": {"gamma": int(y_dev.sum()), "hadron": int((y_dev == 0).sum())},
        "holdout_events": {"gamma": int(y_hold.sum()), "hadron": int((y_hold == 0).sum())},
        "selection": "highest mean cross-validated ROC AUC",
        "accuracy_and_f1": "at P(gamma) >= 0.5; see holdout_at_operating_point for the cut",
    }
    metrics = {
        "chosen": chosen,
        "holdout": candidates[chosen]["holdout"],
        "cross_validation": candidates[chosen]["cross_validation"],
        "candidates": candidates,
    }
    hyperparameters = {
        "model_family": chosen,
        "chosen_candidate": chosen,
        "estimator": describe(chosen),
        "candidates": {n: describe(n) for n in CANDIDATES},
    }
    return TrainingResult(
        model=model,
        chosen=chosen,
        metrics=metrics,
        thresholds=thresholds,
        validation=validation,
        hyperparameters=hyperparameters,
        baselines=baselines,
        features=[dict(f) for f in FEATURES],
        check_rows=x_hold,
    )
