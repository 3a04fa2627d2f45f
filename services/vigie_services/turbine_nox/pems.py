"""Static model of the ``turbine-nox`` service, a predictive emission monitoring system (PEMS).

The package
-----------
* :mod:`.pems` (this module): the inputs and :class:`PemsModel`, the static estimators that
  ``vigie train`` pickles (keep its name, module and attributes: published models unpickle it);
* :mod:`.corrector`: the online recalibration of one target (:class:`~.corrector.Corrector`);
* :mod:`.recalibration`: one request's static values, terms and correction, with each turbine's
  state kept in Redis;
* :mod:`.training`: candidates, validation, the offline replay, ``vigie evaluate``, the card;
* :mod:`.data`: the CSV files shaped like ``turbine_nox/train.csv`` and their replay requests.

Static model
------------
NOx and CO (mg/m3) of a gas turbine are predicted from its 9 hourly process / ambient values
(:data:`INPUTS`), one estimator per target; CO is never an input of NOx.
:func:`~.training.fit` compares a ``Ridge`` on standardised inputs and a
``HistGradientBoostingRegressor`` for each target.

Compiled inference
------------------
The static model's estimators are compiled to ONNX at training (:mod:`vigie.models.compile`,
:func:`.training.compiled_parts`; served by :mod:`vigie.models.compiled`), parts ``NOX`` and
``CO``, files ``model.NOX.onnx`` / ``model.CO.onnx``; the clipping at 0 and the online
:class:`~.corrector.Corrector` (a per-asset state that changes with every analyser value) stay
numpy and work on the static values of either form. ONNX Runtime computes in float32 (gradient
boosting in float64, as scikit-learn does): a target's compiled form is published only when
``|compiled - joblib| <= COMPILED_TOLERANCE`` (0.001 mg/m3, the resolution the service reports,
about 1e-5 of the NOx level) on every row of the validation year; the card records the largest
difference per target under ``compiled``. Measured on the 2011-2015 file (gradient boosting, run
in float64 as in scikit-learn): 2.8e-13 mg/m3 (NOx) and 2.7e-14 mg/m3 (CO) on every row (the
Ridge candidate would run in float32: about 1e-5). A target without a compiled form is served by
its joblib estimator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled

# scikit-learn and threadpoolctl are imported where training and the joblib estimators need
# them, never at import: a serving worker that loads the compiled serving artifact
# (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).

FloatArray = npt.NDArray[np.float64]

# name -> (unit, description, physical lower bound, upper bound); the bounds accept every row of
# the 2011-2015 data with a wide margin and refuse impossible values.
INPUT_SPEC: dict[str, tuple[str, str, float, float]] = {
    "AT": ("°C", "ambient temperature", -50.0, 60.0),
    "AP": ("mbar", "ambient pressure", 800.0, 1100.0),
    "AH": ("%", "ambient relative humidity", 0.0, 105.0),
    "AFDP": ("mbar", "air filter difference pressure", 0.0, 30.0),
    "GTEP": ("mbar", "gas turbine exhaust pressure", 0.0, 100.0),
    "TIT": ("°C", "turbine inlet temperature", 600.0, 1500.0),
    "TAT": ("°C", "turbine after temperature", 300.0, 750.0),
    "TEY": ("MWh", "turbine energy yield", 0.0, 400.0),
    "CDP": ("mbar", "compressor discharge pressure (unit as published)", 0.0, 50.0),
}
INPUTS: tuple[str, ...] = tuple(INPUT_SPEC)
TARGETS: tuple[str, ...] = ("NOX", "CO")
TARGET_BOUNDS: tuple[float, float] = (0.0, 500.0)  # mg/m3, an analyser's physical range
YEAR = "year"
COMPILED_TOLERANCE = 1e-3  # mg/m3: max |static compiled - joblib| to publish a target's form


# HistGradientBoosting runs OpenMP threads that busy-wait; on the shared 2-core hosts training
# and prediction run single-threaded (see transformer_temperature.forecasting).
@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def single_threaded() -> Any:
    return _threadpools().limit(limits=1, user_api="openmp")


@dataclass
class PemsModel:
    """The static estimators and what the corrector needs to standardise its terms."""

    families: dict[str, str]
    estimators: dict[str, Any]
    input_mean: list[float]
    input_std: list[float]
    static_mean: dict[str, float]
    static_std: dict[str, float]
    inputs: tuple[str, ...] = INPUTS

    def static(self, x: FloatArray) -> dict[str, FloatArray]:
        """Static predictions (mg/m3, >= 0) per target for rows of :data:`INPUTS` values."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.inputs))
        # ONNX Runtime runs on one thread of its own: no OpenMP limit to set (~70 µs a call).
        openmp = not compiled.all_compiled(self.estimators.values())
        with single_threaded() if openmp else contextlib.nullcontext():
            return {
                t: np.clip(np.asarray(est.predict(x), dtype=np.float64), 0.0, None)
                for t, est in self.estimators.items()
            }

    def terms(self, target: str, x: FloatArray, static: FloatArray) -> FloatArray:
        """Corrector regressors ``[1, standardised static, standardised inputs]`` per row."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.inputs))
        zx = (x - np.asarray(self.input_mean)) / np.asarray(self.input_std)
        zp = (np.asarray(static, dtype=np.float64) - self.static_mean[target]) / self.static_std[
            target
        ]
        return np.column_stack([np.ones(len(x)), zp, zx])

    # The vigie.models.compiled hook: one part per target of the static model.
    def compiled_parts(self) -> dict[str, Any]:
        return dict(self.estimators)

    def with_compiled(self, predictors: Mapping[str, Any]) -> PemsModel:
        estimators = {t: predictors.get(t, est) for t, est in self.estimators.items()}
        return dataclasses.replace(self, estimators=estimators)
