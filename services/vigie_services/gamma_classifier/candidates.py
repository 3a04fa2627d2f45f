"""The candidate estimators of the ``gamma-classifier`` (compared by :func:`.fitting.fit`).

* ``logistic_regression``: standardised features, L2 logistic regression (a linear baseline);
* ``random_forest``: 150 fully grown trees, ``max_features="sqrt"``;
* ``hist_gradient_boosting``: ``HistGradientBoostingClassifier``, 500 iterations at learning rate
  0.05, 15 leaves, half the features per split (``max_features=0.5``), no early stopping;
* ``soft_vote``: the mean of the random forest's and the gradient-boosted model's P(gamma)
  (``VotingClassifier(voting="soft")``); the two families err on different events, and averaging
  them gained about 0.002 ROC AUC during development.

The hyperparameters were chosen with 5-fold cross-validation on ``train.csv`` during development
(a handful of settings per family, nothing automated), within a training-time budget of a
couple of minutes on one core. scikit-learn is imported in the functions, never at import.
"""

from __future__ import annotations

from typing import Any

SEED = 0


def base_candidates() -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic_regression": make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)
        ),
        "random_forest": RandomForestClassifier(
            n_estimators=150, max_features="sqrt", n_jobs=1, random_state=SEED
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=500,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            max_features=0.5,
            early_stopping=False,  # its internal split would make training non-deterministic
            random_state=SEED,
        ),
    }


# The candidates of base_candidates(), in its order (a test checks they agree).
BASE_CANDIDATES: tuple[str, ...] = (
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
)
# Soft votes: name -> member candidates (equal weights).
VOTES: dict[str, tuple[str, ...]] = {"soft_vote": ("random_forest", "hist_gradient_boosting")}
CANDIDATES: tuple[str, ...] = (*BASE_CANDIDATES, *VOTES)


def make_estimator(name: str) -> Any:
    """A fresh, unfitted estimator of candidate ``name``."""
    from sklearn.ensemble import VotingClassifier

    bases = base_candidates()
    if name in bases:
        return bases[name]
    if name in VOTES:
        return VotingClassifier([(m, bases[m]) for m in VOTES[name]], voting="soft", n_jobs=None)
    raise KeyError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")


def describe(name: str) -> dict[str, Any]:
    from sklearn.ensemble import VotingClassifier

    est = make_estimator(name)
    if isinstance(est, VotingClassifier):
        return {"voting": "soft (mean P(gamma))", "members": {m: describe(m) for m in VOTES[name]}}
    steps = [step for _, step in est.steps] if hasattr(est, "steps") else [est]
    params = {
        k: v
        for k, v in steps[-1].get_params().items()
        if v is None or isinstance(v, bool | int | float | str)
    }
    return {"steps": [type(s).__name__ for s in steps], "params": params}
