"""The flare-probability model of the ``solar-flare`` service, as it serves.

Three binary targets for UTC day *d+1*: at least one flare >=C, >=M, and X (``c``, ``m``, ``x``;
columns of :data:`~vigie_services.solar_flare.summary.TARGETS`), one classifier each, all on the
same features (:mod:`~vigie_services.solar_flare.features`). :class:`FlareForecaster` is what
``vigie train`` stores (``model.joblib``): its class and :class:`PlattCalibrated` keep this
module path and their attributes, or models trained before would not load. How it is fitted and
chosen is :mod:`.fitting`; its metrics are :mod:`.metrics`.

Probabilities are made coherent after the per-class models: ``P(X) <= P(>=M) <= P(>=C)``.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled
from vigie_services.solar_flare import features as ft

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimators need them, never at import: a serving worker that loads the compiled serving
# artifact (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd

    from vigie.models.compile import Part

FloatArray = npt.NDArray[np.float64]

KEYS: tuple[str, ...] = ("c", "m", "x")
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
        q = sigmoid(self.slope * logit(p) + self.intercept)
        out: FloatArray = np.column_stack([1.0 - q, q])
        return out


def logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, _EPS, 1 - _EPS)
    out: FloatArray = np.log(p / (1 - p))
    return out


def sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass
class FlareForecaster:
    """The model in service: one classifier per class, its operating points and climatology."""

    candidate: str
    family: str
    calibration: str
    estimators: dict[str, Any]  # "c", "m", "x" -> fitted classifier with predict_proba
    thresholds: dict[str, float]  # operating point per class (probability)
    climatology: dict[str, float]  # base rate per class of the rows fitted on
    feature_names: list[str] = field(default_factory=lambda: list(ft.FEATURE_NAMES))

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


def compiled_parts(model: FlareForecaster, check_rows: FloatArray) -> list[Part]:
    """What :func:`vigie.models.compile.compile_parts` compiles: each class's base classifier,
    checked on ``check_rows`` (the validation days' features,
    :attr:`.fitting.TrainingResult.check_rows`)."""
    from vigie.models.compile import Part  # training only: workers import no converter

    return [
        Part(k, est, check_rows, COMPILED_TOLERANCE, "probability (before calibration)")
        for k, est in model.compiled_parts().items()
    ]


def _uses_openmp(estimator: Any) -> bool:
    base = estimator.base if isinstance(estimator, PlattCalibrated) else estimator
    return not compiled.is_compiled(base)


def probabilities(model: object, x: FloatArray) -> dict[str, FloatArray]:
    """Coherent probabilities per class for a feature matrix from :func:`.features.features`."""
    if not isinstance(model, FlareForecaster):
        raise TypeError(f"expected a FlareForecaster from fit(), got {type(model).__name__}")
    if model.feature_names != list(ft.FEATURE_NAMES):
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
    return probabilities(model, ft.features(table))
