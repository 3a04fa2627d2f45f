"""The model of the ``gamma-classifier`` service: P(gamma) for MAGIC telescope events.

Input: the 10 Hillas parameters of a shower image (:data:`~.features.COLUMNS`). Output:
``P(gamma)``, gamma being the positive class (``class`` ``g`` in the data, ``h`` = hadron).
:class:`GammaModel` is what ``vigie train`` stores (``model.joblib``, and the serving artifact):
it keeps this module path and its attributes so that models trained before still load. How it
is fitted is in :mod:`.fitting`, its features in :mod:`.features`, its cut in
:mod:`.operating_point`.

Compiled inference
------------------
The fitted estimator (whichever candidate won, the soft vote included) is compiled to ONNX
(:mod:`vigie.models.compile` at training, part ``estimator``, file ``model.onnx``; see
:func:`compiled_parts`); :func:`~.features.features` stays numpy.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled
from vigie_services.gamma_classifier.features import FEATURE_NAMES, features
from vigie_services.gamma_classifier.metrics import scores
from vigie_services.gamma_classifier.operating_point import (
    DEFAULT_HADRON_FPR,
    OperatingPoint,
    operating_point,
)

if TYPE_CHECKING:
    from vigie.models.compile import Part

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimator need them, never at import: a serving worker that loads the compiled serving artifact
# (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).

FloatArray = npt.NDArray[np.float64]

COMPILED_TOLERANCE = 1e-4  # max |P(gamma) compiled - joblib| to publish the compiled form


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


@dataclass
class GammaModel:
    """The fitted estimator plus the validation scores its operating points are cut from."""

    family: str
    estimator: Any
    hadron_scores: FloatArray  # out-of-fold P(gamma) of the development set's hadrons
    gamma_scores: FloatArray  # ... and of its gammas
    default_fpr: float = DEFAULT_HADRON_FPR
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))

    def p_gamma(self, values: npt.ArrayLike) -> FloatArray:
        """P(gamma) of events ``(n, 10)`` in :data:`~.features.COLUMNS` order."""
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
    if model.feature_names != FEATURE_NAMES:
        raise ValueError("model was trained on other features than this code computes; retrain")
    return model.p_gamma(values)


def compiled_parts(model: GammaModel, check_rows: npt.ArrayLike) -> list[Part]:
    """What :func:`vigie.models.compile.compile_parts` compiles: the estimator, checked on the
    features of ``check_rows`` (the held-out slice's, from ``TrainingResult.check_rows``)."""
    from vigie.models.compile import Part  # training only: workers import no converter

    return [
        Part(name, est, check_rows, COMPILED_TOLERANCE, "P(gamma)")
        for name, est in model.compiled_parts().items()
    ]


def evaluate(model: object, values: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float]:
    """The design.md metrics of ``model`` on labelled events (e.g. unseen ones)."""
    return scores(y, p_gamma(model, values))
