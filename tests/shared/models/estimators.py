"""Fitted estimators of every kind the converters handle, on synthetic data, shared by the
tests of :mod:`vigie.models.compile` and :mod:`vigie.models.compiled` (fitted on first use)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

RNG = np.random.default_rng(0)
X = RNG.normal(size=(1500, 8))
Y_CLASS = (X[:, 0] + X[:, 1] ** 2 + RNG.normal(0, 0.5, len(X)) > 1).astype(int)
Y_REG = 3 * X[:, 0] + np.sin(X[:, 1]) + 0.1 * X[:, 2] * X[:, 3]
HELD_OUT = np.random.default_rng(1).normal(size=(400, 8))


def _hgb_classifier(**kw: Any) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=60, early_stopping=False, random_state=0, **kw)


@functools.cache
def estimators() -> dict[str, Any]:
    """Fitted on first use, once per session."""
    return {
        "random_forest_classifier": RandomForestClassifier(30, random_state=0).fit(X, Y_CLASS),
        "hist_gradient_boosting_classifier": _hgb_classifier(max_features=0.5).fit(X, Y_CLASS),
        "monotone_hist_gradient_boosting": _hgb_classifier(monotonic_cst=[1] + [0] * 7).fit(
            X, Y_CLASS
        ),
        "soft_vote": VotingClassifier(
            [("rf", RandomForestClassifier(20, random_state=0)), ("hgb", _hgb_classifier())],
            voting="soft",
        ).fit(X, Y_CLASS),
        "weighted_soft_vote": VotingClassifier(
            [("rf", RandomForestClassifier(20, random_state=0)), ("hgb", _hgb_classifier())],
            voting="soft",
            weights=[1, 3],
        ).fit(X, Y_CLASS),
        "logistic_pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y_CLASS),
        "random_forest_regressor": RandomForestRegressor(
            30, min_samples_leaf=3, max_features=0.5, random_state=0
        ).fit(X, Y_REG),
        "extra_trees_regressor": ExtraTreesRegressor(20, random_state=0).fit(X, Y_REG),
        "hist_gradient_boosting_regressor": HistGradientBoostingRegressor(
            max_iter=80, early_stopping=False, random_state=0
        ).fit(X, Y_REG),
        "absolute_error_boosting": HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=80, early_stopping=False, random_state=0
        ).fit(X, Y_REG),
        "ridge_pipeline": make_pipeline(StandardScaler(), Ridge()).fit(X, Y_REG),
        "isolation_forest": IsolationForest(n_estimators=100, random_state=0).fit(X[:, :6]),
        "isolation_forest_feature_subsets": IsolationForest(
            n_estimators=50, max_features=0.5, random_state=0
        ).fit(X[:, :6]),
    }


METHOD = {
    **dict.fromkeys(
        [
            "random_forest_classifier",
            "hist_gradient_boosting_classifier",
            "monotone_hist_gradient_boosting",
            "soft_vote",
            "weighted_soft_vote",
            "logistic_pipeline",
        ],
        "predict_proba",
    ),
    **dict.fromkeys(
        [
            "random_forest_regressor",
            "extra_trees_regressor",
            "hist_gradient_boosting_regressor",
            "absolute_error_boosting",
            "ridge_pipeline",
        ],
        "predict",
    ),
    "isolation_forest": "score_samples",
    "isolation_forest_feature_subsets": "score_samples",
}


def rows_for(name: str) -> np.ndarray:
    return HELD_OUT[:, :6] if name.startswith("isolation") else HELD_OUT
