"""The transformer-temperature model: :class:`DeltaForecaster` and the forecast it makes.

The model predicts, per horizon, the scaled change ``(OT(t+h) - OT(t)) / ot_scale`` from the
features of :mod:`.features`; the forecast is ``OT(t) + change * ot_scale`` (°C). How it is
chosen and fitted is :mod:`.training`.

:class:`DeltaForecaster` is what ``vigie train`` pickles (``model.joblib``): it stays in this
module, with its attributes, so that models trained before keep loading.

Compiled inference
------------------
The three per-horizon estimators are compiled to ONNX (:mod:`vigie.models.compiled`, parts ``h1``,
``h6``, ``h24``, files ``model.h<N>.onnx``); the features and ``OT(t) + change * ot_scale`` stay
numpy. ONNX Runtime runs gradient-boosted trees in float64, as scikit-learn does (in float32,
features of quantised OT readings took the other branch on about 1 % of the validation origins, up
to 1.5 scaled units off; see :mod:`vigie.models.compiled`), and the Ridge candidate in float32. A
horizon's compiled form is published only when ``|compiled - joblib| <= COMPILED_TOLERANCE``
(1e-4, in units of the target: the scaled change ``(OT(t+h) - OT(t)) / ot_scale``, i.e. at most
1e-4 x ot_scale °C, well under the 0.001 °C the service reports) on every validation origin; the
card records the largest difference per horizon under ``compiled``. Measured on the ETT training
files (gradient boosting, float64): at most 1.3e-14 scaled units on the validation origins, 3e-14
°C on every origin of both files. A horizon without a compiled form is served by its joblib
estimator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigie.models import compiled
from vigie_services.transformer_temperature.features import (
    FEATURES,
    HISTORY_HOURS,
    HORIZONS,
    OT_INDEX,
    check_values,
    features_and_scale,
)

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimators need them, never at import: a serving worker that loads the compiled serving
# artifact (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).

COMPILED_TOLERANCE = 1e-4  # max |compiled - joblib| of the scaled change to publish a horizon


# HistGradientBoosting runs OpenMP threads that busy-wait. On the 2-core hosts we run on, shared
# with gunicorn workers, that is a trap: measured under load, a full fit took 210 s with 2 threads
# vs 17 s with 1, and a single-origin forecast 36 ms vs 6 ms. Training and prediction therefore
# run single-threaded (a thread-local OpenMP setting, restored on exit).
@functools.cache
def _threadpools() -> Any:
    # Built on first use, not at import: it inspects the native libraries loaded by then.
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def single_threaded() -> Any:
    """A context in which OpenMP (HistGradientBoosting) runs on one thread."""
    return _threadpools().limit(limits=1, user_api="openmp")


@dataclass
class DeltaForecaster:
    """One fitted estimator per horizon, each predicting ``(OT(t+h) - OT(t)) / ot_scale``."""

    family: str
    estimators: list[Any]
    history_hours: int = HISTORY_HOURS
    horizons: tuple[int, ...] = HORIZONS
    feature_names: list[str] = field(default_factory=lambda: [f["name"] for f in FEATURES])

    # The vigie.models.compiled hook: one part per horizon, named h<N>.
    def compiled_parts(self) -> dict[str, Any]:
        return {f"h{h}": est for h, est in zip(self.horizons, self.estimators, strict=True)}

    def with_compiled(self, predictors: Mapping[str, Any]) -> DeltaForecaster:
        estimators = [
            predictors.get(f"h{h}", est)
            for h, est in zip(self.horizons, self.estimators, strict=True)
        ]
        return dataclasses.replace(self, estimators=estimators)


def forecast(model: object, values: np.ndarray) -> np.ndarray:
    """Absolute OT forecasts (°C), shape ``(n - HISTORY_HOURS + 1, len(HORIZONS))``.

    Column ``j`` is the forecast ``HORIZONS[j]`` hours after each origin row. ``model`` is
    ``fit(...).model``.
    """
    if not isinstance(model, DeltaForecaster):
        raise TypeError(f"expected a DeltaForecaster from fit(), got {type(model).__name__}")
    if model.history_hours != HISTORY_HOURS or tuple(model.horizons) != HORIZONS:
        raise ValueError(
            f"model was trained for history {model.history_hours} h / horizons {model.horizons}, "
            f"this code uses {HISTORY_HOURS} h / {HORIZONS}"
        )
    features, scale = features_and_scale(values)
    # ONNX Runtime runs on one thread of its own: no OpenMP limit to set (~70 µs a call).
    openmp = not compiled.all_compiled(model.estimators)
    with single_threaded() if openmp else contextlib.nullcontext():
        change = np.column_stack([est.predict(features) for est in model.estimators])
    ot_now = np.asarray(values, dtype=np.float64)[HISTORY_HOURS - 1 :, OT_INDEX]
    return ot_now[:, None] + change * scale[:, None]


def forecast_rows(model: object, values: np.ndarray) -> np.ndarray:
    """:func:`forecast` with one row per row of ``values``: the rows without a full window
    before them (the first ``HISTORY_HOURS - 1``) are NaN."""
    out = np.full((len(values), len(HORIZONS)), np.nan)
    out[HISTORY_HOURS - 1 :] = forecast(model, values)
    return out


def persistence(values: np.ndarray) -> np.ndarray:
    """Baseline with the shape of :func:`forecast`: ``OT(t+h) = OT(t)``."""
    ot_now = check_values(values)[HISTORY_HOURS - 1 :, OT_INDEX]
    return np.repeat(ot_now[:, None], len(HORIZONS), axis=1)
