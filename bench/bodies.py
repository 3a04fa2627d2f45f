"""What the fleet bench sends and measures per service: request bodies built from real CSVs by
the service's own replay code, the model calls a predict makes, and in-process latencies.

A bench request is a ``POST /v1/predict`` body that gets ``rows`` predictions. For most services
that is ``rows`` measurements; the services that need history send it too, so their "1 row" is
a longer body: transformer-temperature needs 72 hourly measurements for one forecast (100
forecasts: 171 hours), energy-anomaly 7 days of history plus the day scored (100: 107 days).
Rows in the bench's tables are always predictions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

from bench.baseline import estimators_of
from vigie.contract.batch import Batch
from vigie.contract.replay import ReplayRequest
from vigie.contract.service import PredictionService
from vigie.io.asset_state import AssetStateStore
from vigie.models.store import LoadedModel, ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services import load_service

# The CSV each service trains on (under the data directory); their replay code reads it.
DATA_FILES: dict[str, Path] = {
    "solar-flare": Path("solar_flare") / "daily_train.csv",
    "gamma-classifier": Path("gamma") / "train.csv",
    "transformer-temperature": Path("transformer") / "ETTh1_train.csv",
    "turbine-nox": Path("turbine_nox") / "train.csv",
    "energy-anomaly": Path("energy") / "gas_regional_daily_train.csv",
}


@dataclass(frozen=True)
class Body:
    """One predict body: ``rows`` predictions out of ``len(measurements)`` measurements."""

    service: str
    asset_id: str
    measurements: list[dict[str, Any]]
    rows: int

    def payload(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "measurements": self.measurements}

    def to_json(self) -> bytes:
        return json.dumps(self.payload(), allow_nan=False, separators=(",", ":")).encode()

    def label(self) -> str:
        """``1 row``, ``100 rows``, or ``1 row (72 meas.)`` when history comes along."""
        text = f"{self.rows} row{'s' if self.rows != 1 else ''}"
        extra = len(self.measurements) - self.rows
        return f"{text} ({len(self.measurements)} meas.)" if extra else text

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_json())
        return path


def data_file(service: str, data_dir: Path) -> Path:
    return data_dir / DATA_FILES[service]


def _valid(service: PredictionService[Any, Any], request: ReplayRequest) -> bool:
    """Whether the service's schema accepts every measurement (a few real rows are refused,
    e.g. energy-anomaly's hourly values over its bound: such a request would be a 422)."""
    try:
        for m in request.measurements:
            service.Measurement.model_validate_json(json.dumps(m, allow_nan=False))
    except ValueError:  # pydantic's ValidationError, or NaN in the JSON
        return False
    return True


def build_body(service: PredictionService[Any, Any], csv: Path, rows: int) -> Body:
    """The first request of the CSV's replay that gets exactly ``rows`` predictions and that the
    service's schema accepts; ``ValueError`` when the file has none (too short, or refused)."""
    for request in service.replay_requests(csv, None, rows):
        if request.rows == rows and _valid(service, request):
            return Body(service.name, request.asset_id, list(request.measurements), rows)
    raise ValueError(f"{service.name}: {csv} has no run of {rows} valid rows to predict")


def build_bodies(
    service: PredictionService[Any, Any], csv: Path, sizes: tuple[int, ...]
) -> dict[int, Body]:
    return {rows: build_body(service, csv, rows) for rows in sizes}


def parsed(service: PredictionService[Any, Any], body: Body) -> list[Any]:
    """The body's measurements as the service's schema reads them (what ``predict`` gets)."""
    return [
        service.Measurement.model_validate_json(json.dumps(m, allow_nan=False))
        for m in body.measurements
    ]


# --------------------------------------------------------------- the model calls of a predict

_METHODS = ("predict_proba", "predict", "decision_function", "score_samples")


@dataclass(frozen=True)
class ModelCall:
    """One call the service made to a predictor of its model: a scikit-learn estimator of the
    artifact, or the compiled (ONNX Runtime) part standing in for one."""

    estimator: int  # index in ``estimators``
    method: str
    x: Any  # the input as the service passed it (numpy array or DataFrame), copied
    openmp_threads: int | None = None  # OpenMP's thread limit during the call (threadpoolctl)


def openmp_threads() -> int | None:
    """The current OpenMP thread limit (scikit-learn's tree code uses OpenMP), if loaded."""
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "openmp"]
    return min(counts) if counts else None


class Recorder:
    """Wraps the predictors' predict methods (instance attributes that shadow the class's) to
    record what the service's own feature code passes them. Only the outermost call counts:
    a voting classifier's ``predict`` calling its own ``predict_proba`` is one call.

    Install it on a model *before* the service binds it (``bind`` may keep bound methods), and
    time the service on another instance: the wrappers cost a little."""

    def __init__(self, estimators: list[Any]) -> None:
        self.estimators = estimators
        self.calls: list[ModelCall] = []
        self.originals: dict[tuple[int, str], Any] = {}
        self._depth = 0
        for i, est in enumerate(estimators):
            for name in _METHODS:
                if hasattr(est, name):
                    self.originals[(i, name)] = getattr(est, name)
                    setattr(est, name, self._wrap(i, name, getattr(est, name)))

    def _wrap(self, index: int, name: str, original: Any) -> Any:
        def recorded(x: Any, *args: Any, **kwargs: Any) -> Any:
            if self._depth == 0:
                self.calls.append(ModelCall(index, name, x.copy(), openmp_threads()))
            self._depth += 1
            try:
                return original(x, *args, **kwargs)
            finally:
                self._depth -= 1

        return recorded

    def take(self) -> list[ModelCall]:
        calls, self.calls = self.calls, []
        return calls

    def call(self, c: ModelCall) -> Any:
        """Repeat a recorded call, without the wrapper."""
        return self.originals[(c.estimator, c.method)](c.x)


def baseline_row(estimators: list[Any], calls: list[ModelCall]) -> tuple[list[float], bool]:
    """The baseline's body for one row: each estimator's first recorded input row, in
    ``estimators`` order, flattened; zeros of its width for an estimator the service did not
    call (then the second value is False: not the service's own features)."""
    row: list[float] = []
    real = True
    for i, est in enumerate(estimators):
        first = next((c for c in calls if c.estimator == i), None)
        width = int(est.n_features_in_)
        if first is None:
            row += [0.0] * width
            real = False
        else:
            values = np.asarray(first.x, dtype=float)[0].tolist()
            # JSON has no NaN: a missing value (trees handle them) is sent as 0.
            row += [float(v) if math.isfinite(v) else 0.0 for v in values[:width]]
    return row, real


# ------------------------------------------------------------------ in-process latencies


def median_ms(fn: Callable[[], object], repeats: int, budget_s: float = 5.0) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (fewer, but at least 3, if they would
    take more than ``budget_s``), after one warm-up run."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _time_calls(recorder: Recorder, calls: list[ModelCall], repeats: int) -> float:
    """Median time of the recorded model calls of one predict, repeated under the OpenMP
    thread limit they ran with (turbine-nox limits it to 1; the others run with the default)."""
    limits = {c.openmp_threads for c in calls}
    limit = limits.pop() if len(limits) == 1 else None
    scope = (
        threadpool_limits(limits=limit, user_api="openmp")
        if limit is not None
        else contextlib.nullcontext()
    )
    with scope:
        return median_ms(lambda: [recorder.call(c) for c in calls], repeats)


@dataclass
class InProcess:
    result: dict[str, Any]  # the report's "in_process"
    estimators: list[Any]  # the artifact's scikit-learn estimators
    baseline_row: list[float]
    row_is_real: bool  # the service's own features (else zeros)
    artifact: Path


def _joblib_only(loaded: LoadedModel) -> LoadedModel:
    """The same model without its compiled parts (ONNX Runtime, when the card has them): what
    the service computes with scikit-learn alone."""
    if getattr(loaded, "compiled", None):
        return dataclasses.replace(loaded, compiled={})
    return loaded


def _spy(
    name: str,
    settings: VigieSettings,
    state: redis.Redis,
    loaded: LoadedModel,
    predictors: list[Any],
    samples: dict[int, Body],
) -> tuple[Recorder, dict[int, list[ModelCall]]]:
    """A service bound to ``loaded`` whose ``predictors`` record their calls, run once per
    sample."""
    recorder = Recorder(predictors)
    spy = load_service(name)(settings)
    spy.state = AssetStateStore(state, name)
    spy.bind(loaded)
    calls = {}
    for rows, body in samples.items():
        score_call(spy, Batch(body.asset_id, parsed(spy, body)))
        calls[rows] = recorder.take()
    return recorder, calls


def _names(recorder: Recorder, calls: dict[int, list[ModelCall]]) -> dict[str, list[str]]:
    return {
        str(rows): [f"{type(recorder.estimators[c.estimator]).__name__}.{c.method}" for c in cs]
        for rows, cs in calls.items()
    }


def in_process(
    name: str,
    settings: VigieSettings,
    state: redis.Redis,
    samples: dict[int, Body],
    repeats: int,
) -> InProcess:
    """Latencies of the service's ``predict`` as served (full service path) and of the model
    calls it makes, and the baseline's row.

    Separate instances: the timed one, bound as the runtime binds it; one whose predictors
    (compiled parts and scikit-learn estimators) record their calls, for the raw model time;
    and, when parts are compiled, one on the joblib estimators alone, whose calls give the
    baseline's row (the features the service computes) and the raw scikit-learn time."""
    store = ModelStore(settings.models_dir)
    served = store.load_current(name)
    compiled = dict(getattr(served, "compiled", None) or {})
    reference = _joblib_only(store.load_current(name)) if compiled else served
    estimators = [e for e in estimators_of(reference.model) if hasattr(e, "n_features_in_")]
    ref_recorder, ref_calls = _spy(name, settings, state, reference, estimators, samples)
    if compiled:
        predictors = [*estimators_of(served.model), *compiled.values()]
        recorder, calls = _spy(name, settings, state, served, predictors, samples)
    else:
        recorder, calls = ref_recorder, ref_calls

    timed = load_service(name)(settings)
    timed.state = AssetStateStore(state, name)
    timed.bind(store.load_current(name))
    predict: dict[str, float] = {}
    raw: dict[str, float] = {}
    raw_sklearn: dict[str, float] = {}
    for rows, body in samples.items():
        ms = parsed(timed, body)
        batch = Batch(body.asset_id, ms)
        predict[str(rows)] = round(median_ms(lambda: score_call(timed, batch), repeats), 3)  # noqa: B023
        if calls[rows]:
            raw[str(rows)] = round(_time_calls(recorder, calls[rows], repeats), 3)
        if compiled and ref_calls[rows]:
            raw_sklearn[str(rows)] = round(_time_calls(ref_recorder, ref_calls[rows], repeats), 3)
    row, real = baseline_row(estimators, ref_calls[min(samples)])
    result: dict[str, Any] = {
        "predict_ms": predict,
        "raw_model_ms": raw,  # the calls the served model makes (compiled parts when any)
        "raw_sklearn_ms": raw_sklearn or None,  # the joblib estimators, when parts are compiled
        "served_form": f"onnxruntime: {', '.join(sorted(compiled))}" if compiled else "joblib",
        "compiled_status": getattr(served, "compiled_status", None),
        "model_calls": _names(recorder, calls),
        "repeats": repeats,
    }
    return InProcess(result, estimators, row, real, served.path)
