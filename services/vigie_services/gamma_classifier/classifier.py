"""Classifier core of the ``gamma-classifier`` service: P(gamma) for MAGIC telescope events.

Input: the 10 Hillas parameters of a shower image (:data:`COLUMNS`, units in :data:`INPUTS`).
Output: ``P(gamma)``, gamma being the positive class (``class`` ``g`` in the data, ``h`` =
hadron).

Features
--------
:func:`features` is the one feature function, used by training, evaluation and serving. It keeps
the 10 parameters and adds 15 derived ones (:data:`FEATURES`): logarithms of the image axes, the
image shape (width/length, concentration ratio, moments over the axes), the axes and the
two-brightest-pixel content relative to the image size, the light density, and the position of the
major axis relative to the camera centre (``miss = fDist sin(fAlpha)``,
``disp = fDist cos(fAlpha)``, ``fDist / fLength``). Gamma showers are narrow, compact ellipses
pointing at the source (small alpha, small miss); hadron showers are broad and point anywhere.
On 5-fold cross-validation of ``train.csv`` the derived features raised the ROC AUC of the
gradient-boosted model from 0.932 to 0.944 (default hyperparameters), mostly through the
concentration ratio, width/length, miss and the moments over the axes.

Candidates and selection (:func:`fit`)
--------------------------------------
* ``logistic_regression``: standardised features, L2 logistic regression (a linear baseline);
* ``random_forest``: 150 fully grown trees, ``max_features="sqrt"``;
* ``hist_gradient_boosting``: ``HistGradientBoostingClassifier``, 500 iterations at learning rate
  0.05, 15 leaves, half the features per split (``max_features=0.5``), no early stopping;
* ``soft_vote``: the mean of the random forest's and the gradient-boosted model's P(gamma)
  (``VotingClassifier(voting="soft")``); the two families err on different events, and averaging
  them gained about 0.002 ROC AUC during development.

The hyperparameters were chosen with 5-fold cross-validation on ``train.csv`` during development
(a handful of settings per family, nothing automated), within a training-time budget of a
couple of minutes on one core.

Validation: a stratified 20 % slice of the training file is held out (``HOLDOUT_FRACTION``,
seed 0). On the remaining 80 % (the development set) every candidate is scored by stratified
5-fold cross-validation (shuffled, seed 0; the soft vote's fold scores are the mean of its
members' fold scores, which is what the fitted vote computes). The candidate with the highest
mean cross-validated ROC AUC is kept (ROC AUC because the service ranks events for a cut at a
chosen hadron rate, and it does not depend on the class mix of the simulated data). Every
candidate is then fitted on the whole development set and scored once on the held-out slice:
those are the model card's figures. The kept candidate is finally refitted on all the rows.

Metrics (:func:`scores`): ``accuracy`` and ``f1`` (gamma positive) at P(gamma) >= 0.5, i.e. the
usual classification accuracy for the class mix of the simulated data; ``roc_auc``; and
``tpr_at_fpr_<x>``, the largest gamma efficiency (true-positive rate) of any cut whose hadron
false-positive rate is at most ``x``, for x = 1 %, 5 %, 10 %.

Operating point
---------------
The class an event gets (gamma/hadron) comes from a cut on P(gamma) chosen for a hadron
false-positive rate ``f`` (default ``DEFAULT_HADRON_FPR`` = 5 %, per asset configurable): the cut
lets through at most ``floor(f * n_h)`` of the ``n_h`` hadrons of the development set's
out-of-fold scores (:func:`operating_point`), halfway between the last hadron score kept out and
the next higher one. Out-of-fold scores come from models that did not see those events, so they
behave like the scores of unseen events; the final model is refitted on more data, so its cut is
checked on the held-out slice and reported in the card (``thresholds``). The measured ``f`` and
gamma efficiency at the cut feed the batch significance (:mod:`.significance`).

Compiled inference
------------------
The fitted estimator (whichever candidate won, the soft vote included) is compiled to ONNX
(:mod:`vigie.models.compiled`, part ``estimator``, file ``model.onnx``); :func:`features` stays
numpy.
ONNX Runtime computes in float32 (gradient boosting in float64, as scikit-learn does): the compiled
form is published only when ``|P_onnx - P_joblib| <= COMPILED_TOLERANCE`` (1e-4) on every held-out
event (the card records the largest difference under ``compiled``). Measured on the MAGIC training
file (soft vote of the forest, whose leaf fractions are summed in float32, and the gradient-boosted
model, run in float64): 3.9e-7 on the held-out slice and on all 19 020 events. Without it, P(gamma)
comes from the joblib estimator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimator need them, never at import: a serving worker that loads the compiled serving artifact
# (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The 10 Hillas parameters, in the order of the data file: (name, unit, description).
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("fLength", "mm", "major axis of the shower ellipse"),
    ("fWidth", "mm", "minor axis of the shower ellipse"),
    ("fSize", "log10(#phe)", "10-log of the sum of the content of all pixels (photo-electrons)"),
    ("fConc", "ratio", "sum of the two highest pixels over fSize"),
    ("fConc1", "ratio", "highest pixel over fSize"),
    ("fAsym", "mm", "distance from the highest pixel to the centre, along the major axis"),
    ("fM3Long", "mm", "3rd root of the third moment along the major axis"),
    ("fM3Trans", "mm", "3rd root of the third moment along the minor axis"),
    ("fAlpha", "degrees", "angle of the major axis with the vector to the origin"),
    ("fDist", "mm", "distance from the origin to the centre of the ellipse"),
)
COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in INPUTS)
LABEL = "class"
GAMMA, HADRON = "g", "h"

METRIC_KEYS = ("accuracy", "f1", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "tpr_at_fpr_0.1")
FPR_POINTS = (0.01, 0.05, 0.1)
DEFAULT_HADRON_FPR = 0.05
DECISION_THRESHOLD = 0.5  # for accuracy and F1 (see the module docstring)

COMPILED_TOLERANCE = 1e-4  # max |P(gamma) compiled - joblib| to publish the compiled form

HOLDOUT_FRACTION = 0.2
CV_FOLDS = 5
SEED = 0
MIN_EVENTS_PER_CLASS = 50

_DERIVED: tuple[tuple[str, str], ...] = (
    ("log10_length", "log10(mm)"),
    ("log10_width", "log10(mm) (of 1 mm + fWidth)"),
    ("width_over_length", "ratio"),
    ("length_per_size", "log10(mm / #phe)"),
    ("width_per_size", "log10(mm / #phe) (of 1 mm + fWidth)"),
    ("asym_over_length", "ratio"),
    ("m3long_over_length", "ratio"),
    ("m3trans_over_width", "ratio (over 1 mm + fWidth)"),
    ("miss", "mm (fDist sin fAlpha)"),
    ("disp", "mm (fDist cos fAlpha)"),
    ("conc1_over_conc", "ratio"),
    ("log10_conc_phe", "log10(#phe) (photo-electrons in the two brightest pixels)"),
    ("log10_density", "log10(#phe / mm^2) (fSize over fLength (1 mm + fWidth))"),
    ("dist_over_length", "ratio"),
    ("abs_m3long_over_length", "ratio"),
)
FEATURES: list[dict[str, str]] = [{"name": n, "unit": u} for n, u, _ in INPUTS] + [
    {"name": n, "unit": u} for n, u in _DERIVED
]

# Guards so that features() stays finite on CSV rows the HTTP schema would refuse.
_MIN_LENGTH_MM = 1e-3
_MIN_CONC = 1e-4


# HistGradientBoosting runs OpenMP threads that busy-wait; on the small hosts we run on, shared
# with gunicorn workers and other jobs, one thread is faster and fair. Training and prediction
# run single-threaded (a thread-local OpenMP setting, restored on exit); forests use n_jobs=1.
@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


@contextmanager
def single_threaded() -> Iterator[None]:
    with _threadpools().limit(limits=1, user_api="openmp"):
        yield


# ----------------------------------------------------------------------------------- features


def _raw(values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS):
        raise ValueError(f"values must have shape (n, {len(COLUMNS)}) in {COLUMNS} order")
    if not np.isfinite(arr).all():
        raise ValueError("values contain NaN or infinite entries")
    return arr


def features(values: npt.ArrayLike) -> FloatArray:
    """Model features (:data:`FEATURES` order) of events ``(n, 10)`` in :data:`COLUMNS` order."""
    raw = _raw(values)
    length, width, size, conc, conc1, asym, m3long, m3trans, alpha, dist = raw.T
    length = np.maximum(length, _MIN_LENGTH_MM)
    width1 = 1.0 + np.maximum(width, 0.0)
    conc = np.maximum(conc, _MIN_CONC)
    log_length = np.log10(length)
    log_width = np.log10(width1)
    alpha_rad = np.radians(alpha)
    derived = np.column_stack(
        [
            log_length,
            log_width,
            width / length,
            log_length - size,
            log_width - size,
            asym / length,
            m3long / length,
            m3trans / width1,
            dist * np.sin(alpha_rad),
            dist * np.cos(alpha_rad),
            conc1 / conc,
            np.log10(conc) + size,
            size - np.log10(length * width1),
            dist / length,
            np.abs(m3long) / length,
        ]
    )
    return np.hstack([raw, derived])


# ------------------------------------------------------------------------------------ data


def load_events(path: Path) -> tuple[FloatArray, IntArray]:
    """Events and labels (1 = gamma) of a CSV with the columns of ``gamma/train.csv``."""
    import pandas as pd

    frame = pd.read_csv(path)
    return events_from_frame(frame, str(path))


def events_from_frame(frame: pd.DataFrame, name: str = "frame") -> tuple[FloatArray, IntArray]:
    import pandas as pd

    missing = [c for c in (*COLUMNS, LABEL) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{name}: no rows")
    labels = frame[LABEL].astype(str).str.strip()
    bad = ~labels.isin([GAMMA, HADRON])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{name}: column {LABEL!r} must be {GAMMA!r} or {HADRON!r}, "
            f"row {row} has {frame[LABEL].iloc[row]!r}"
        )
    values = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce")
    invalid = ~np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise ValueError(f"{name}: missing, non-numeric or infinite value in row {row}")
    return values.to_numpy(dtype=np.float64), (labels == GAMMA).to_numpy().astype(np.int64)


# ------------------------------------------------------------------------------------ metrics


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


# ---------------------------------------------------------------------------- operating point


@dataclass(frozen=True)
class OperatingPoint:
    """A cut on P(gamma): events with ``p_gamma >= threshold`` are classified gamma."""

    target_fpr: float
    threshold: float
    hadron_fpr: float  # measured on the validation (out-of-fold) scores, <= target_fpr
    gamma_efficiency: float  # measured likewise
    validation_hadrons: int
    validation_gammas: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "target_hadron_fpr": self.target_fpr,
            "probability_threshold": self.threshold,
            "hadron_fpr": self.hadron_fpr,
            "gamma_efficiency": self.gamma_efficiency,
            "validation_hadrons": self.validation_hadrons,
            "validation_gammas": self.validation_gammas,
        }


def operating_point(
    hadron_scores: npt.ArrayLike, gamma_scores: npt.ArrayLike, target_fpr: float
) -> OperatingPoint:
    """The cut that lets through at most ``floor(target_fpr * n_h)`` validation hadrons.

    Raises ``ValueError`` when that is no hadron at all (``target_fpr`` too small for the sample,
    or ties), since a zero false-positive rate leaves the background unmeasured.
    """
    if not 0 < target_fpr < 1:
        raise ValueError(f"target hadron FPR must be in (0, 1), got {target_fpr}")
    h = np.sort(np.asarray(hadron_scores, dtype=np.float64))[::-1]
    g = np.asarray(gamma_scores, dtype=np.float64)
    n_h = len(h)
    allowed = math.floor(target_fpr * n_h + 1e-9)
    if allowed < 1 or not len(g):
        raise ValueError(
            f"hadron FPR {target_fpr} is below what {n_h} validation hadrons can measure "
            f"(at least {1 / max(n_h, 1):.4g})"
        )
    boundary = h[allowed]  # the highest hadron score that must stay below the cut
    above = h[h > boundary]
    if not len(above):
        raise ValueError(f"no cut reaches hadron FPR {target_fpr}: tied validation scores")
    threshold = float((boundary + above.min()) / 2)
    return OperatingPoint(
        target_fpr=target_fpr,
        threshold=threshold,
        hadron_fpr=float((h >= threshold).mean()),
        gamma_efficiency=float((g >= threshold).mean()),
        validation_hadrons=n_h,
        validation_gammas=len(g),
    )


# -------------------------------------------------------------------------------------- model


@dataclass
class GammaModel:
    """The fitted estimator plus the validation scores its operating points are cut from."""

    family: str
    estimator: Any
    hadron_scores: FloatArray  # out-of-fold P(gamma) of the development set's hadrons
    gamma_scores: FloatArray  # ... and of its gammas
    default_fpr: float = DEFAULT_HADRON_FPR
    feature_names: list[str] = field(default_factory=lambda: [f["name"] for f in FEATURES])

    def p_gamma(self, values: npt.ArrayLike) -> FloatArray:
        """P(gamma) of events ``(n, 10)`` in :data:`COLUMNS` order."""
        x = features(values)
        # ONNX Runtime runs on one thread of its own: no OpenMP limit to set (~70 µs a call).
        limit = (
            contextlib.nullcontext() if compiled.is_compiled(self.estimator) else single_threaded()
        )
        with limit:
            proba = self.estimator.predict_proba(x)
        return np.asarray(proba[:, 1], dtype=np.float64)

    # The vigie.models.compiled hook: the estimator is the one part.
    def compiled_parts(self) -> dict[str, Any]:
        return {"estimator": self.estimator}

    def with_compiled(self, predictors: Mapping[str, Any]) -> GammaModel:
        if "estimator" not in predictors:
            return self
        return dataclasses.replace(self, estimator=predictors["estimator"])

    def operating_point(self, target_fpr: float | None = None) -> OperatingPoint:
        fpr = self.default_fpr if target_fpr is None else target_fpr
        return operating_point(self.hadron_scores, self.gamma_scores, fpr)


def p_gamma(model: object, values: npt.ArrayLike) -> FloatArray:
    """P(gamma) of ``values`` ``(n, 10)`` with ``model`` (``fit(...).model``)."""
    if not isinstance(model, GammaModel):
        raise TypeError(f"expected a GammaModel from fit(), got {type(model).__name__}")
    if model.feature_names != [f["name"] for f in FEATURES]:
        raise ValueError("model was trained on other features than this code computes; retrain")
    return model.p_gamma(values)


def compiled_parts(model: GammaModel, check_rows: npt.ArrayLike) -> list[compiled.Part]:
    """What :func:`vigie.models.compiled.compile_parts` compiles: the estimator, checked on the
    features of ``check_rows`` (the held-out slice's, from :attr:`TrainingResult.check_rows`)."""
    return [
        compiled.Part(name, est, check_rows, COMPILED_TOLERANCE, "P(gamma)")
        for name, est in model.compiled_parts().items()
    ]


def evaluate(model: object, values: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float]:
    """The design.md metrics of ``model`` on labelled events (e.g. unseen ones)."""
    return scores(y, p_gamma(model, values))


# ----------------------------------------------------------------------------------- training


def _base_candidates() -> dict[str, Any]:
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


# The candidates of _base_candidates(), in its order (a test checks they agree).
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

    bases = _base_candidates()
    if name in bases:
        return bases[name]
    if name in VOTES:
        return VotingClassifier([(m, bases[m]) for m in VOTES[name]], voting="soft", n_jobs=None)
    raise KeyError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")


def _describe(name: str) -> dict[str, Any]:
    from sklearn.ensemble import VotingClassifier

    est = make_estimator(name)
    if isinstance(est, VotingClassifier):
        return {"voting": "soft (mean P(gamma))", "members": {m: _describe(m) for m in VOTES[name]}}
    steps = [step for _, step in est.steps] if hasattr(est, "steps") else [est]
    params = {
        k: v
        for k, v in steps[-1].get_params().items()
        if v is None or isinstance(v, bool | int | float | str)
    }
    return {"steps": [type(s).__name__ for s in steps], "params": params}


def _fit_proba(name: str, x_fit: FloatArray, y_fit: IntArray, x_score: FloatArray) -> FloatArray:
    from sklearn.base import clone

    with single_threaded():
        est = clone(make_estimator(name)).fit(x_fit, y_fit)
        return np.asarray(est.predict_proba(x_score)[:, 1], dtype=np.float64)


@dataclass
class TrainingResult:
    """Everything :func:`fit` produces; ``model`` is what :func:`p_gamma` needs."""

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

    raw = _raw(values)
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
    for name in _base_candidates():
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
        "estimator": _describe(chosen),
        "candidates": {n: _describe(n) for n in CANDIDATES},
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
