"""Model core of the ``turbine-nox`` service: a predictive emission monitoring system (PEMS).

Static model
------------
NOx and CO (mg/m3) of a gas turbine are predicted from its 9 hourly process / ambient values
(:data:`INPUTS`), one estimator per target; CO is never an input of NOx. :func:`fit` compares a
``Ridge`` on standardised inputs and a ``HistGradientBoostingRegressor`` for each target.

Online recalibration (:class:`Corrector`)
-----------------------------------------
The emissions drift strongly from year to year (NOx ≈ 68-70 mg/m3 in 2011-2013, ≈ 60 in 2014)
while the inputs do not, so a static model is biased on any later period. As a real PEMS is
recalibrated against reference analysers, every analyser value (``POST /v1/feedback`` or ``NOX`` /
``CO`` sent with the measurements) updates a per-asset, per-target correction:

* method: exponentially weighted ridge regression of the residual ``measured - static`` on
  ``z = [1, (static - mean) / std, standardised inputs]`` (11 terms). The state is the weighted
  normal equations ``A = sum w_i z_i z_i^T`` and ``b = sum w_i z_i r_i`` with ``w_i =
  FORGETTING^age``; the coefficients solve ``(A + R) theta = b`` with ``R = diag(INTERCEPT_RIDGE,
  RIDGE, ..., RIDGE)`` (``INTERCEPT_RIDGE`` = 2, ``RIDGE`` = 10: the first value moves the
  correction by a third of its residual, 24 values by ~90 %). The ridge term keeps it stable
  when the turbine sits at one operating point (plain recursive least squares with forgetting
  blows up there), and shrinks the correction towards 0 (= the static model) while little is
  known.
* memory: ``FORGETTING = 0.99`` per accepted sample, a half-life of ``ln 0.5 / ln 0.99`` ≈ 69
  samples (about 3 days of hourly values); after ~300 samples an old value weighs < 5 %.
* corrected prediction = ``static + clip(theta . z, -max_correction, +max_correction)``
  (``max_correction`` 30 mg/m3 for NOx, 10 mg/m3 for CO), never below 0.
* faulty analyser: (1) an observation for a timestamp already learned is ignored (re-sent
  feedback counts once); (2) a *stuck* analyser: a value identical to the previous one
  (``STUCK_REPEATS`` = 2 equal readings in a row) is ignored until it changes; (3) an *outlier*:
  after ``WARMUP`` accepted values, a value whose innovation ``|measured - corrected|`` exceeds
  ``REJECT_K`` = 5 times the robust scale (exponentially weighted mean absolute innovation of
  the accepted values, floored at ``scale_floor``) is ignored, unless ``MAX_REJECT_RUN`` = 12
  values in a row were rejected: a sustained shift is then taken as real, learned, and the scale
  widened to it (it shrinks back at ``SCALE_RATE`` per value).
* the state is a small JSON object (kept in Redis by the service, shared by every worker); the
  same class replays the data offline in :func:`replay`, so serving and evaluation cannot differ.
  The service learns a request's values with :meth:`Corrector.learn_many`, which gives the state
  (bit for bit) and outcomes of :meth:`Corrector.learn` value by value, with the solves of
  consecutive accepted values batched into one ``np.linalg.solve`` call.

Validation (:func:`fit`)
------------------------
Rows carry no timestamps but are in time order within each year (hourly, the lag-1
autocorrelation of AT is 0.99). The last year of the file is held out: candidates are trained on
the earlier years and scored on it statically and by :func:`replay`: the held-out year in row
order, each row's measured NOx/CO known to the corrector ``DELAY_ROWS`` = 24 rows later, starting
from an empty correction. The candidate with the best online R² (the corrected value is what the
service uses) is kept per target and refitted on all years.

Compiled inference
------------------
The static model's estimators are compiled to ONNX (:mod:`vigie.models.compiled`, parts ``NOX`` and
``CO``, files ``model.NOX.onnx`` / ``model.CO.onnx``); the clipping at 0 and the online
:class:`Corrector` (a per-asset state that changes with every analyser value) stay numpy and work
on the static values of either form. ONNX Runtime computes in float32 (gradient boosting in
float64, as scikit-learn does): a target's compiled form is published only when ``|compiled -
joblib| <= COMPILED_TOLERANCE`` (0.001 mg/m3, the resolution the service reports, about 1e-5 of the
NOx level) on every row of the validation year; the card records the largest difference per target
under ``compiled``. Measured on the 2011-2015 file (gradient boosting, run in float64 as in
scikit-learn): 2.8e-13 mg/m3 (NOx) and 2.7e-14 mg/m3 (CO) on every row (the Ridge candidate would
run in float32: about 1e-5). A target without a compiled form is served by its joblib estimator.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.models import compiled

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimators need them, never at import: a serving worker that loads the compiled serving
# artifact (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd

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

DELAY_ROWS = 24
FORGETTING = 0.99
RIDGE = 10.0
INTERCEPT_RIDGE = 2.0
REJECT_K = 5.0
WARMUP = 24
MAX_REJECT_RUN = 12
STUCK_REPEATS = 2
SCALE_RATE = 0.05  # weight of a new |innovation| in the robust scale
MAE_RATE = 0.02  # weight of a new |error| in the live MAE (half-life ~ 34 values)
SEEN_KEEP = 96  # timestamps remembered to ignore re-sent observations
LEARN_CHUNK = 64  # values learned per batched solve (Corrector.learn_many)
MAX_CORRECTION = {"NOX": 30.0, "CO": 10.0}
SCALE_FLOOR = {"NOX": 1.0, "CO": 0.2}
COMPILED_TOLERANCE = 1e-3  # mg/m3: max |static compiled - joblib| to publish a target's form


# HistGradientBoosting runs OpenMP threads that busy-wait; on the shared 2-core hosts training
# and prediction run single-threaded (see transformer_temperature.forecasting).
@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def _single_threaded() -> Any:
    return _threadpools().limit(limits=1, user_api="openmp")


# --------------------------------------------------------------------------------------- data


def load_frame(path: str | Path, *, need_targets: bool = True) -> pd.DataFrame:
    """Read a CSV shaped like ``turbine_nox/train.csv``; ``ValueError`` says what is wrong."""
    import pandas as pd

    path = Path(path)
    frame = pd.read_csv(path)
    wanted = [*INPUTS, *(TARGETS if need_targets else ())]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{path}: no data rows")
    keep = wanted + ([YEAR] if YEAR in frame.columns else [])
    data = frame[keep].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(data.to_numpy()).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: missing or non-numeric value in data row {row + 1}")
    return data.reset_index(drop=True)


# -------------------------------------------------------------------------------------- model


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
        with _single_threaded() if openmp else contextlib.nullcontext():
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


def compiled_parts(model: PemsModel, check_rows: FloatArray) -> list[compiled.Part]:
    """What :func:`vigie.models.compiled.compile_parts` compiles: each target's static estimator,
    checked on ``check_rows`` (the validation year's inputs, :attr:`TrainingResult.check_rows`)."""
    return [
        compiled.Part(t, est, check_rows, COMPILED_TOLERANCE, "mg/m3")
        for t, est in model.compiled_parts().items()
    ]


def _candidates() -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        # early_stopping off: its random internal split would leak across time and make
        # training non-deterministic.
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            learning_rate=0.05,
            max_iter=300,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
    }


def _describe(template: Any) -> dict[str, object]:
    steps = [step for _, step in template.steps] if hasattr(template, "steps") else [template]
    params = {k: v for k, v in steps[-1].get_params().items() if _jsonable(v)}
    return {"steps": [type(step).__name__ for step in steps], "params": params}


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _build(
    families: dict[str, str], frame: pd.DataFrame, templates: dict[str, Any] | None = None
) -> PemsModel:
    from sklearn.base import clone

    templates = templates or _candidates()
    x = frame[list(INPUTS)].to_numpy(dtype=np.float64)
    estimators = {}
    with _single_threaded():
        for target, family in families.items():
            estimators[target] = clone(templates[family]).fit(x, frame[target].to_numpy())
    std = x.std(axis=0)
    model = PemsModel(
        families=dict(families),
        estimators=estimators,
        input_mean=x.mean(axis=0).tolist(),
        input_std=np.where(std > 1e-9, std, 1.0).tolist(),
        static_mean={},
        static_std={},
    )
    static = model.static(x)
    for target, p in static.items():
        model.static_mean[target] = float(p.mean())
        model.static_std[target] = float(max(p.std(), 1e-6))
    return model


# ---------------------------------------------------------------------------------- corrector


@dataclass(frozen=True)
class Corrector:
    """Online recalibration of one target; the state is a JSON-ready dict (see module doc)."""

    target: str
    forgetting: float = FORGETTING
    ridge: float = RIDGE
    intercept_ridge: float = INTERCEPT_RIDGE
    reject_k: float = REJECT_K
    warmup: int = WARMUP
    max_reject_run: int = MAX_REJECT_RUN
    stuck_repeats: int = STUCK_REPEATS
    max_correction: float = 30.0
    scale_floor: float = 1.0

    @classmethod
    def for_target(cls, target: str) -> Corrector:
        return cls(target, max_correction=MAX_CORRECTION[target], scale_floor=SCALE_FLOOR[target])

    @property
    def half_life(self) -> float:
        return math.log(0.5) / math.log(self.forgetting)

    def describe(self) -> dict[str, object]:
        return {
            "method": "exponentially weighted ridge regression of (measured - static) on "
            "[1, standardised static prediction, standardised inputs]",
            "forgetting": self.forgetting,
            "half_life_samples": round(self.half_life, 1),
            "ridge": self.ridge,
            "intercept_ridge": self.intercept_ridge,
            "max_correction_mg_m3": self.max_correction,
            "outlier_rule": f"ignore |measured - corrected| > {self.reject_k} x robust scale "
            f"(floor {self.scale_floor} mg/m3) after {self.warmup} values, unless "
            f"{self.max_reject_run} in a row",
            "stuck_rule": f"ignore a value equal to the previous one ({self.stuck_repeats} equal "
            "readings in a row) until it changes",
            "duplicates": "an observation for an already learned timestamp is ignored",
        }

    def empty(self) -> dict[str, Any]:
        k = 2 + len(INPUTS)
        return {
            "A": np.zeros((k, k)).tolist(),
            "b": [0.0] * k,
            "theta": [0.0] * k,
            "learned": 0,
            "ignored": {"duplicate": 0, "stuck": 0, "outlier": 0},
            "scale": None,
            "reject_run": 0,
            "last_value": None,
            "repeats": 0,
            "seen": [],
            "mae_corrected": None,
            "mae_static": None,
        }

    def correction(self, state: dict[str, Any] | None, z: FloatArray) -> FloatArray:
        """Corrections (mg/m3) for rows of terms ``z``; 0 without state."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if not state:
            return np.zeros(len(z))
        raw = z @ np.asarray(state["theta"], dtype=np.float64)
        return np.clip(raw, -self.max_correction, self.max_correction)

    def corrected(self, state: dict[str, Any] | None, z: FloatArray, static: FloatArray) -> Any:
        return np.clip(np.asarray(static) + self.correction(state, z), 0.0, None)

    def learn(
        self,
        state: dict[str, Any] | None,
        z: FloatArray,
        static: float,
        measured: float,
        key: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Learn one analyser value; returns the new state and ``learned`` or why it was ignored
        (``duplicate``, ``stuck``, ``outlier``). ``state`` is modified in place when given."""
        s = state if state else self.empty()
        if key is not None:
            if key in s["seen"]:
                return self._ignored(s, "duplicate")
            s["seen"] = [*s["seen"], key][-SEEN_KEEP:]
        if s["last_value"] is not None and measured == s["last_value"]:
            s["repeats"] += 1
        else:
            s["last_value"], s["repeats"] = float(measured), 1
        if s["repeats"] >= self.stuck_repeats:
            return self._ignored(s, "stuck")
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        corrected = float(self.corrected(s, z[None, :], np.array([static]))[0])
        innovation = measured - corrected
        scale = max(s["scale"] or 0.0, self.scale_floor)
        if s["learned"] >= self.warmup and abs(innovation) > self.reject_k * scale:
            s["reject_run"] += 1
            if s["reject_run"] < self.max_reject_run:
                return self._ignored(s, "outlier")
            s["scale"] = abs(innovation)  # a sustained shift: widen the gate, it shrinks back
        s["reject_run"] = 0
        a = self.forgetting * np.asarray(s["A"]) + np.outer(z, z)
        b = self.forgetting * np.asarray(s["b"]) + z * (measured - static)
        penalty = np.full(len(z), self.ridge)
        penalty[0] = self.intercept_ridge
        s["A"], s["b"] = a.tolist(), b.tolist()
        s["theta"] = np.linalg.solve(a + np.diag(penalty), b).tolist()
        s["scale"] = abs(innovation) if s["scale"] is None else (
            (1 - SCALE_RATE) * s["scale"] + SCALE_RATE * abs(innovation)
        )  # fmt: skip
        s["mae_corrected"] = _ew(s["mae_corrected"], abs(innovation))
        s["mae_static"] = _ew(s["mae_static"], abs(measured - static))
        s["learned"] += 1
        return s, "learned"

    def learn_many(
        self,
        state: dict[str, Any] | None,
        z: FloatArray,
        static: npt.ArrayLike,
        measured: npt.ArrayLike,
        keys: list[str] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """Learn analyser values in order: row ``i`` of ``z`` (terms), ``static``, ``measured``
        and ``keys``. The same new state (bit for bit) and outcomes as :meth:`learn` called on
        each value in turn, without one ``np.linalg.solve`` per value:

        * the checks that do not depend on the correction (re-sent timestamp, stuck analyser)
          run first, in one pass;
        * the values that reach the outlier gate are learned in runs of up to
          :data:`LEARN_CHUNK`: the normal equations of each value of a run (assuming every
          one is accepted) are stacked, solved in one batched ``np.linalg.solve``, and the gate
          is checked in order with the coefficients before each value; an outlier ends the run
          (the values after it are redone from the state before it, in shorter runs at first).

        ``state`` is modified in place when given (as :meth:`learn` does)."""
        s = state if state else self.empty()
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        static_values = np.asarray(static, dtype=np.float64).reshape(-1).tolist()
        values = np.asarray(measured, dtype=np.float64).reshape(-1).tolist()
        outcomes = [""] * len(values)
        ignored: dict[str, int] = s["ignored"]

        # 1. re-sent timestamps and a stuck analyser (they do not depend on the correction)
        gate: list[int] = []  # rows that reach the outlier gate, in order
        seen = s["seen"]  # unique keys, oldest first (learn never appends a known one)
        window, known = collections.deque(seen, maxlen=SEEN_KEEP), set(seen)
        last_value, repeats = s["last_value"], s["repeats"]
        for i, value in enumerate(values):
            key = None if keys is None else keys[i]
            if key is not None:
                if key in known:
                    ignored["duplicate"] = ignored.get("duplicate", 0) + 1
                    outcomes[i] = "duplicate"
                    continue
                if len(window) == SEEN_KEEP:
                    known.discard(window[0])
                window.append(key)
                known.add(key)
            if last_value is not None and value == last_value:
                repeats += 1
            else:
                last_value, repeats = value, 1
            if repeats >= self.stuck_repeats:
                ignored["stuck"] = ignored.get("stuck", 0) + 1
                outcomes[i] = "stuck"
                continue
            gate.append(i)
        if len(window) != len(seen) or (window and window[-1] != seen[-1]):
            s["seen"] = list(window)
        s["last_value"], s["repeats"] = last_value, repeats
        if not gate:
            return s, outcomes

        # 2. the outlier gate and the ridge regression, in runs of stacked normal equations
        k = z.shape[1]
        penalty = np.diag(np.full(k, self.ridge))
        penalty[0, 0] = self.intercept_ridge
        system = np.column_stack([np.asarray(s["A"], dtype=np.float64), s["b"]])  # [A | b]
        theta = np.asarray(s["theta"], dtype=np.float64)
        rows = np.array(gate)
        zg = z[rows]
        static_gate = [static_values[i] for i in gate]
        value_gate = [values[i] for i in gate]
        residual = np.array([v - p for v, p in zip(value_gate, static_gate, strict=True)])
        # each gated value's [z z^T | z (measured - static)], as learn computes them
        terms = np.concatenate(
            [zg[:, :, None] * zg[:, None, :], (zg * residual[:, None])[:, :, None]], axis=2
        )
        scale, reject_run, learned = s["scale"], s["reject_run"], s["learned"]
        mae_corrected, mae_static = s["mae_corrected"], s["mae_static"]
        floor, limit, warmup = self.scale_floor, self.max_correction, self.warmup
        learned_any = False
        start, chunk = 0, LEARN_CHUNK
        while start < len(gate):
            end = min(start + chunk, len(gate))
            run = end - start
            stacked = np.empty((run, k, k + 1))
            previous = system
            for j in range(run):  # the forgetting recurrence, in learn's order of operations
                np.multiply(self.forgetting, previous, out=stacked[j])
                np.add(stacked[j], terms[start + j], out=stacked[j])
                previous = stacked[j]
            thetas = np.linalg.solve(stacked[:, :, :k] + penalty, stacked[:, :, k:])[:, :, 0]
            before = np.concatenate([theta[None, :], thetas[:-1]])
            raw = np.matmul(zg[start:end, None, :], before[:, :, None])[:, 0, 0].tolist()
            accepted = run
            for j in range(run):
                g = start + j
                # learn's corrected value (np.clip of float64: min/max of the same floats)
                corrected = max(static_gate[g] + min(max(raw[j], -limit), limit), 0.0)
                innovation = value_gate[g] - corrected
                gate_scale = max(scale or 0.0, floor)
                if learned >= warmup and abs(innovation) > self.reject_k * gate_scale:
                    reject_run += 1
                    if reject_run < self.max_reject_run:
                        ignored["outlier"] = ignored.get("outlier", 0) + 1
                        outcomes[gate[g]] = "outlier"
                        accepted = j
                        break
                    scale = abs(innovation)  # a sustained shift: see learn
                reject_run = 0
                scale = abs(innovation) if scale is None else (
                    (1 - SCALE_RATE) * scale + SCALE_RATE * abs(innovation)
                )  # fmt: skip
                mae_corrected = _ew(mae_corrected, abs(innovation))
                mae_static = _ew(mae_static, abs(value_gate[g] - static_gate[g]))
                learned += 1
                outcomes[gate[g]] = "learned"
            if accepted:
                system, theta = stacked[accepted - 1], thetas[accepted - 1]
                learned_any = True
            start += accepted + (accepted < run)  # past the outlier, if the run stopped at one
            # after an outlier more may follow (a shift): shorter runs for a while
            chunk = min(2 * chunk, LEARN_CHUNK) if accepted == run else 4
        s["scale"], s["reject_run"], s["learned"] = scale, reject_run, learned
        s["mae_corrected"], s["mae_static"] = mae_corrected, mae_static
        if learned_any:
            s["A"], s["b"] = system[:, :k].tolist(), system[:, k].tolist()
            s["theta"] = theta.tolist()
        return s, outcomes

    @staticmethod
    def _ignored(s: dict[str, Any], why: str) -> tuple[dict[str, Any], str]:
        s["ignored"][why] = s["ignored"].get(why, 0) + 1
        return s, why


def _ew(old: float | None, new: float) -> float:
    return new if old is None else (1 - MAE_RATE) * old + MAE_RATE * new


def correctors() -> dict[str, Corrector]:
    return {t: Corrector.for_target(t) for t in TARGETS}


# --------------------------------------------------------------------------------- evaluation


def replay(
    model: PemsModel, x: FloatArray, measured: dict[str, FloatArray], delay: int = DELAY_ROWS
) -> dict[str, FloatArray]:
    """Corrected predictions of rows in order, each row's measured values learned ``delay``
    rows later, from an empty correction (what the service does, offline)."""
    static = model.static(x)
    out: dict[str, FloatArray] = {}
    for target, corrector in correctors().items():
        if target not in measured:
            continue
        z = model.terms(target, x, static[target])
        p, y = static[target], np.asarray(measured[target], dtype=np.float64)
        state: dict[str, Any] | None = None
        result = np.empty(len(p))
        for t in range(len(p)):
            if t >= delay:
                i = t - delay
                state, _ = corrector.learn(state, z[i], float(p[i]), float(y[i]))
            result[t] = corrector.corrected(state, z[t : t + 1], p[t : t + 1])[0]
        out[target] = result
    return out


def _metrics(y: dict[str, FloatArray], p: dict[str, FloatArray], suffix: str) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    nox, co = (np.asarray(y["NOX"]), np.asarray(p["NOX"])), (np.asarray(y["CO"]), p["CO"])
    return {
        f"nox_mae{suffix}": float(mean_absolute_error(*nox)),
        f"nox_rmse{suffix}": float(root_mean_squared_error(*nox)),
        f"nox_r2{suffix}": float(r2_score(*nox)),
        f"co_mae{suffix}": float(mean_absolute_error(*co)),
        f"co_r2{suffix}": float(r2_score(*co)),
    }


def evaluate(model: PemsModel, frame: pd.DataFrame, delay: int = DELAY_ROWS) -> dict[str, float]:
    """design.md keys for the static model and, with suffix ``_online``, for :func:`replay`."""
    if len(frame) < 2:
        raise ValueError("need at least 2 rows to score")
    x = frame[list(INPUTS)].to_numpy(dtype=np.float64)
    y = {t: frame[t].to_numpy(dtype=np.float64) for t in TARGETS}
    return {
        **_metrics(y, model.static(x), ""),
        **_metrics(y, replay(model, x, y, delay), "_online"),
    }


def baselines(train: pd.DataFrame, test: pd.DataFrame, delay: int = DELAY_ROWS) -> dict[str, Any]:
    """Naive references on the validation year: the training mean (climatology) and the last
    measured value known ``delay`` rows earlier (persistence, what an online service could do
    without a model)."""
    y = {t: test[t].to_numpy(dtype=np.float64) for t in TARGETS}
    clim = {t: np.full(len(test), float(train[t].mean())) for t in TARGETS}
    first = {t: np.r_[np.full(delay, float(train[t].iloc[-1])), y[t][:-delay]] for t in TARGETS}
    return {"climatology": _metrics(y, clim, ""), "persistence_24_rows": _metrics(y, first, "")}


# ----------------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    model: PemsModel
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    validation: dict[str, Any]
    hyperparameters: dict[str, Any]
    candidates: dict[str, Any] = field(default_factory=dict)
    # inputs of the validation year, to check the compiled form on
    check_rows: FloatArray = field(default_factory=lambda: np.empty((0, len(INPUTS))))


def split_years(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Earlier years for training, the last year for validation."""
    if YEAR not in frame.columns:
        raise ValueError(f"a '{YEAR}' column is needed to validate forward in time")
    years = sorted(int(y) for y in frame[YEAR].unique())
    if len(years) < 2:
        raise ValueError(f"need at least 2 years to validate forward in time, got {years}")
    last = years[-1]
    train, test = frame[frame[YEAR] < last], frame[frame[YEAR] == last]
    if len(test) <= DELAY_ROWS + 1 or len(train) < 50:
        raise ValueError(f"too few rows to validate: {len(train)} train, {len(test)} in {last}")
    return train, test, last


def fit(frame: pd.DataFrame, progress: Callable[[str], None] = lambda _m: None) -> TrainingResult:
    """Compare the candidates on the last year, keep the best per target, refit on all years."""
    train, test, last = split_years(frame)
    first = int(train[YEAR].min())
    progress(
        f"validation: train {first}-{last - 1} ({len(train)} rows), replay {last} "
        f"({len(test)} rows, measured values known {DELAY_ROWS} rows later)"
    )
    templates = _candidates()
    per_family: dict[str, dict[str, float]] = {}
    for family in templates:
        progress(f"fitting {family} for {', '.join(TARGETS)}")
        model = _build(dict.fromkeys(TARGETS, family), train, templates)
        per_family[family] = evaluate(model, test)
        m = per_family[family]
        progress(
            f"{family} on {last}: nox_r2 {m['nox_r2']:.3f} static / {m['nox_r2_online']:.3f} "
            f"online, co_r2 {m['co_r2']:.3f} / {m['co_r2_online']:.3f}"
        )
    prefix = {"NOX": "nox", "CO": "co"}
    chosen = {
        t: max(
            per_family,
            key=lambda f, t=t: (
                per_family[f][f"{prefix[t]}_r2_online"],
                per_family[f][f"{prefix[t]}_r2"],
            ),  # type: ignore[misc]
        )
        for t in TARGETS
    }
    progress(f"chosen: {chosen}")
    if len(set(chosen.values())) == 1:
        validation_metrics = per_family[chosen["NOX"]]
    else:
        validation_metrics = evaluate(_build(chosen, train, templates), test)
    progress(f"refitting on all {len(frame)} rows")
    final = _build(chosen, frame, templates)
    candidates = {
        family: {"estimator": _describe(templates[family]), f"validation_{last}": metrics}
        for family, metrics in per_family.items()
    }
    return TrainingResult(
        model=final,
        metrics={f"validation_{last}": validation_metrics},
        baselines=baselines(train, test),
        validation={
            "method": (
                f"forward in time: fit on {first}-{last - 1}, score {last} statically and by a "
                f"replay in row order where each row's measured NOX/CO reach the online "
                f"corrector {DELAY_ROWS} rows later (empty correction at the start); the "
                f"shipped model is refitted on {first}-{last}"
            ),
            "train_years": sorted(int(y) for y in train[YEAR].unique()),
            "validation_year": last,
            "train_rows": len(train),
            "validation_rows": len(test),
            "delay_rows": DELAY_ROWS,
            "selection": "per target, the candidate with the best online R2 (then static R2)",
        },
        hyperparameters={
            "chosen": chosen,
            "estimators": {t: _describe(templates[f]) for t, f in chosen.items()},
            "candidates": candidates,
            "corrector": {t: c.describe() for t, c in correctors().items()},
        },
        candidates=candidates,
        check_rows=test[list(INPUTS)].to_numpy(dtype=np.float64),
    )


def input_rows(rows: Iterable[dict[str, float]]) -> FloatArray:
    return np.array([[r[c] for c in INPUTS] for r in rows], dtype=np.float64)
