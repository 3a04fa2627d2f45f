"""Forecasting core of the ``transformer-temperature`` service.

Forecasts a power transformer's oil temperature ``OT`` 1 h, 6 h and 24 h ahead from the last
``HISTORY_HOURS`` hourly rows of its six load channels and ``OT`` (ETT data format).

Model
-----
Oil temperature follows the season (ambient temperature), which is not in the data, and the
service is judged on a later period than it is trained on. The model therefore never sees an
absolute level: it predicts the *change* ``OT(t+h) - OT(t)`` from features that are all relative
to the current state of the window, and the forecast is ``OT(t)`` plus that change.

* ``ot_scale`` = mean absolute hourly OT change over the window + 0.05 °C. OT differences and the
  target change are divided by it, so one global model serves transformers whose temperature
  swings differ (ETTh2 moves about twice as much as ETTh1) and it can serve a new transformer.
* OT features: changes since 1..71 h ago, position against the window mean / 24 h mean / min /
  max, window spread, day-over-day drift of the 24 h mean, and the change that happened over the
  same 1 h / 6 h one and two days ago (the daily cycle).
* Load features (per channel, divided by that channel's spread over the window because load
  magnitudes differ by an order of magnitude between transformers): changes since 1/3/6/24 h
  ago, position against the window mean, and the load change over the next 1 h / 6 h one day ago
  (a proxy for where the load goes next).
* No calendar or absolute-date features, no absolute OT or load levels.

Two families are compared by :func:`fit` (one estimator per horizon, both on the scaled change):
a ``Ridge`` on standardised features and a ``HistGradientBoostingRegressor`` with absolute-error
loss (the service is judged on MAE). The one with the lower validation MAE, averaged over
horizons and assets, is kept and refitted on all the data.

Validation
----------
Time ordered, per asset: the last 20 % of the rows form the validation slice; the training slice
ends ``GAP_HOURS`` (24 h) before it, so no training target falls within 24 h of validation data.
Validation origins only use rows of the validation slice, i.e. the slice is scored exactly as
:func:`evaluate` would score it. ``HISTORY_HOURS`` = 72 was chosen on that slice during
development (with an earlier variant of these features, gradient boosting: 48 h gave a mean MAE of
1.28 °C vs 1.25 °C and lost to persistence at one horizon; 96 h brought no gain).

Thresholds
----------
Default level thresholds per asset come from the OT distribution of the rows given to
:func:`fit` for that asset (the final model's training data): ``alerte_c`` = 99th percentile,
``critique_c`` = 99.9th percentile, both rounded to the nearest 0.5 °C (``critique_c`` is kept at
least 0.5 °C above ``alerte_c``).

Compiled inference
------------------
The three per-horizon estimators are compiled to ONNX (:mod:`vigie.models.compiled`, parts ``h1``,
``h6``,
``h24``, files ``model.h<N>.onnx``); the features and ``OT(t) + change * ot_scale`` stay numpy.
ONNX Runtime runs gradient-boosted trees in float64, as scikit-learn does (in float32, features of
quantised OT readings took the other branch on about 1 % of the validation origins, up to 1.5
scaled units off; see :mod:`vigie.models.compiled`), and the Ridge candidate in float32. A horizon's
compiled form is published only when ``|compiled - joblib| <= COMPILED_TOLERANCE`` (1e-4, in units
of the target: the scaled change ``(OT(t+h) - OT(t)) / ot_scale``, i.e. at most 1e-4 x ot_scale °C,
well under the 0.001 °C the service reports) on every validation origin; the card records the
largest difference per horizon under ``compiled``. Measured on the ETT training files (gradient
boosting, float64): at most 1.3e-14 scaled units on the validation origins, 3e-14 °C on every
origin of both files. A horizon without a compiled form is served by its joblib estimator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from vigie.models import compiled

# scikit-learn, pandas and threadpoolctl are imported where training, evaluation and the joblib
# estimators need them, never at import: a serving worker that loads the compiled serving
# artifact (vigie.models.store) imports this module and must not pay for them (~110 MB of RSS).
if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

COLUMNS: tuple[str, ...] = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
LOAD_COLUMNS: tuple[str, ...] = COLUMNS[:6]
HORIZONS: tuple[int, ...] = (1, 6, 24)
HISTORY_HOURS: int = 72

VALIDATION_FRACTION = 0.2
GAP_HOURS = 24
COMPILED_TOLERANCE = 1e-4  # max |compiled - joblib| of the scaled change to publish a horizon

_OT = COLUMNS.index("OT")
_OT_LAGS = (1, 2, 3, 4, 6, 9, 12, 18, 23, 24, 36, 47, 71)
_LOAD_LAGS = (1, 3, 6, 24)
_DAYS_BACK = (24, 48)  # "same time one / two days ago" for the daily cycle
_DAILY_STEPS = (1, 6)  # only the sub-day horizons: the 24 h step one day ago is ot_change_24h
_OT_SCALE_FLOOR_C = 0.05  # keeps the scale positive on a flat (e.g. stuck-sensor) window
_LOAD_SCALE_REL = 0.05  # keeps near-constant load channels (often exactly 0) from blowing up
_LOAD_SCALE_FLOOR = 0.01
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

assert max(_OT_LAGS) < HISTORY_HOURS and max(_DAYS_BACK) < HISTORY_HOURS
assert max(_LOAD_LAGS) < HISTORY_HOURS


# HistGradientBoosting runs OpenMP threads that busy-wait. On the 2-core hosts we run on, shared
# with gunicorn workers, that is a trap: measured under load, a full fit took 210 s with 2 threads
# vs 17 s with 1, and a single-origin forecast 36 ms vs 6 ms. Training and prediction therefore
# run single-threaded (a thread-local OpenMP setting, restored on exit).
@functools.cache
def _threadpools() -> Any:
    # Built on first use, not at import: it inspects the native libraries loaded by then.
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def _single_threaded() -> Any:
    return _threadpools().limit(limits=1, user_api="openmp")


def _feature_spec() -> list[dict[str, str]]:
    """Names and units of the feature columns, in the order :func:`forecast_origins` builds them."""
    ot_rel = "ratio (°C / ot_scale)"
    load_rel = "ratio (load / channel spread over the window)"
    spec = [{"name": "ot_scale", "unit": "°C (mean absolute hourly OT change)"}]
    spec += [{"name": f"ot_change_{k}h", "unit": ot_rel} for k in _OT_LAGS]
    spec += [
        {"name": f"ot_minus_{what}", "unit": ot_rel}
        for what in ("window_mean", "mean_24h", "window_min")
    ]
    spec += [
        {"name": "window_max_minus_ot", "unit": ot_rel},
        {"name": "ot_window_std", "unit": ot_rel},
        {"name": "ot_mean_24h_minus_previous_24h", "unit": ot_rel},
        {"name": "ot_mean_6h_minus_ot", "unit": ot_rel},
    ]
    for d in _DAYS_BACK:
        for s in _DAILY_STEPS:
            spec.append({"name": f"ot_change_next_{s}h_{d}h_ago", "unit": ot_rel})
            spec.append({"name": f"ot_{d - s}h_ago_minus_ot", "unit": ot_rel})
    for k in _LOAD_LAGS:
        spec += [{"name": f"{c}_change_{k}h", "unit": load_rel} for c in LOAD_COLUMNS]
    spec += [{"name": f"{c}_minus_window_mean", "unit": load_rel} for c in LOAD_COLUMNS]
    for s in _DAILY_STEPS:
        spec += [{"name": f"{c}_change_next_{s}h_24h_ago", "unit": load_rel} for c in LOAD_COLUMNS]
    return spec


FEATURES: list[dict[str, str]] = _feature_spec()


# --------------------------------------------------------------------------------------- data


def load_series(path: str | Path) -> pd.DataFrame:
    """Read one ETT-format CSV (``date`` + :data:`COLUMNS`) into an hourly, sorted frame.

    Raises ``ValueError`` naming missing columns, unparsable dates or values, duplicate
    timestamps, or the first break in the hourly regularity.
    """
    import pandas as pd

    path = Path(path)
    frame = pd.read_csv(path)
    missing = [c for c in ("date", *COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{path}: no data rows")
    try:
        index = pd.to_datetime(frame["date"], format=_DATE_FORMAT)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: 'date' must be 'YYYY-MM-DD HH:MM:SS': {exc}") from exc
    data = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    data.index = pd.DatetimeIndex(index, name="date")
    data = data.sort_index()
    bad = data.isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{path}: missing or non-numeric value(s), first at {data.index[bad][0]}")
    duplicated = data.index.duplicated()
    if duplicated.any():
        raise ValueError(f"{path}: duplicate timestamp {data.index[duplicated][0]}")
    steps = data.index.to_series().diff().iloc[1:]
    irregular = steps != pd.Timedelta(hours=1)
    if irregular.any():
        at = int(np.flatnonzero(irregular.to_numpy())[0]) + 1
        raise ValueError(
            f"{path}: rows are not hourly: {data.index[at - 1]} is followed by {data.index[at]} "
            f"(step {steps.iloc[at - 1]}, expected 1:00:00)"
        )
    return data


def _values(frame: pd.DataFrame) -> FloatArray:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing column(s): {', '.join(missing)}")
    return frame[list(COLUMNS)].to_numpy(dtype=np.float64)


# ----------------------------------------------------------------------------------- features


def _check_values(values: np.ndarray) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS):
        raise ValueError(f"values must have shape (n, {len(COLUMNS)}) in {COLUMNS} order")
    if arr.shape[0] < HISTORY_HOURS:
        raise ValueError(f"need at least HISTORY_HOURS={HISTORY_HOURS} rows, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError("values contain NaN or infinite entries")
    return arr


# Column positions of the features built from pairs of window values (see _features_and_scale):
# the OT lags (OT now minus OT k hours ago), the daily-cycle pairs, and the load pairs.
_OT_NOW = -1
_LAG_COLUMNS = np.array([-1 - k for k in _OT_LAGS])
_DAILY_FIRST = np.array([-1 - d + s for d in _DAYS_BACK for s in _DAILY_STEPS for _ in (0, 1)])
_DAILY_SECOND = np.array([c for d in _DAYS_BACK for s in _DAILY_STEPS for c in (-1 - d, _OT_NOW)])
_LOAD_FIRST = np.array([-1] * len(_LOAD_LAGS) + [-25 + s for s in _DAILY_STEPS])
_LOAD_SECOND = np.array([-1 - k for k in _LOAD_LAGS] + [-25] * len(_DAILY_STEPS))
_N_OT = len(_OT_LAGS) + 7 + len(_DAILY_FIRST)  # OT features after ot_scale
_N_LOAD_BLOCKS = len(_LOAD_LAGS) + 1 + len(_DAILY_STEPS)  # blocks of one value per channel


def _mean(x: FloatArray, axis: int) -> FloatArray:
    """``x.mean(axis, keepdims=True)`` of a float64 array, as numpy computes it (the sum, then
    a division by the count), without ``np.mean``'s Python overhead (~2 µs a call)."""
    out: FloatArray = np.add.reduce(x, axis=axis, keepdims=True) / x.shape[axis]
    return out


def _std(x: FloatArray, axis: int) -> FloatArray:
    """``x.std(axis, keepdims=True)`` of a float64 array, as numpy computes it (deviations
    from :func:`_mean`, squared in place, summed, divided by the count), ~2x faster."""
    deviations = x - _mean(x, axis)
    np.square(deviations, out=deviations)
    out: FloatArray = np.sqrt(np.add.reduce(deviations, axis=axis, keepdims=True) / x.shape[axis])
    return out


def _features_and_scale(values: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """Feature matrix and per-origin ``ot_scale`` (°C) for every full window of ``values``.

    Every value is the same as an elementwise computation per origin would give (each feature
    is one subtraction, reduction and division of window values): the blocks are written in
    place into one matrix, with one gather per group of pairs, so that a single origin (a
    request's usual case) costs few numpy calls."""
    arr = _check_values(values)
    # (origins, columns, hours), a read-only view: sliding_window_view(arr, HISTORY_HOURS,
    # axis=0) (the same shape and strides, so the same reductions), without its ~10 µs of checks
    row, column = arr.strides
    win = as_strided(
        arr, (len(arr) - HISTORY_HOURS + 1, len(COLUMNS), HISTORY_HOURS), (row, column, row),
        writeable=False,
    )  # fmt: skip
    ot = win[:, _OT, :]
    loads = win[:, :_OT, :]
    now = ot[:, -1:]  # OT at the origin, kept 2-D for broadcasting
    scale = _mean(np.abs(np.diff(ot, axis=1)), 1) + _OT_SCALE_FLOOR_C
    load_mean = _mean(loads, 2)[:, :, 0]
    load_scale = (
        _std(loads, 2)[:, :, 0]
        + _LOAD_SCALE_REL * _mean(np.abs(loads), 2)[:, :, 0]
        + _LOAD_SCALE_FLOOR
    )
    mean_24h = _mean(ot[:, -24:], 1)

    n = len(win)
    features = np.empty((n, 1 + _N_OT + _N_LOAD_BLOCKS * len(LOAD_COLUMNS)))
    features[:, :1] = scale
    o = features[:, 1 : 1 + _N_OT]  # a view: the OT features, in FEATURES order
    k = len(_OT_LAGS)
    np.subtract(now, ot[:, _LAG_COLUMNS], out=o[:, :k])
    np.subtract(now, _mean(ot, 1), out=o[:, k : k + 1])
    np.subtract(now, mean_24h, out=o[:, k + 1 : k + 2])
    np.subtract(now, ot.min(axis=1, keepdims=True), out=o[:, k + 2 : k + 3])
    np.subtract(ot.max(axis=1, keepdims=True), now, out=o[:, k + 3 : k + 4])
    o[:, k + 4 : k + 5] = _std(ot, 1)
    np.subtract(mean_24h, _mean(ot[:, -48:-24], 1), out=o[:, k + 5 : k + 6])
    np.subtract(_mean(ot[:, -6:], 1), now, out=o[:, k + 6 : k + 7])
    np.subtract(ot[:, _DAILY_FIRST], ot[:, _DAILY_SECOND], out=o[:, k + 7 :])
    o /= scale

    # The load features, block by block (a block = one value per channel): the pairs'
    # differences (n, channels, blocks) and the position against the window mean.
    pairs = loads[:, :, _LOAD_FIRST] - loads[:, :, _LOAD_SECOND]
    # a view (each row's 42 load values are contiguous): the writes below fill ``features``
    blocks = features[:, 1 + _N_OT :].reshape(n, _N_LOAD_BLOCKS, len(LOAD_COLUMNS))
    lags = len(_LOAD_LAGS)
    blocks[:, :lags] = pairs[:, :, :lags].transpose(0, 2, 1)
    np.subtract(loads[:, :, -1], load_mean, out=blocks[:, lags])
    blocks[:, lags + 1 :] = pairs[:, :, lags:].transpose(0, 2, 1)
    blocks /= load_scale[:, None, :]
    return features, scale[:, 0]


def forecast_origins(values: np.ndarray) -> np.ndarray:
    """Feature matrix, one row per forecast origin (rows ``HISTORY_HOURS-1 .. n-1`` of ``values``).

    ``values`` is a float array ``(n, 7)`` in :data:`COLUMNS` order, contiguous hourly rows,
    ``n >= HISTORY_HOURS``. Columns are described by :data:`FEATURES`.
    """
    return _features_and_scale(values)[0]


def _targets(values: FloatArray) -> FloatArray:
    """OT(t+h) - OT(t) per origin and horizon; NaN where t+h is beyond the data."""
    ot = values[:, _OT]
    origins = np.arange(HISTORY_HOURS - 1, len(values))
    out = np.full((len(origins), len(HORIZONS)), np.nan)
    for j, h in enumerate(HORIZONS):
        known = origins + h < len(values)
        out[known, j] = ot[origins[known] + h] - ot[origins[known]]
    return out


# -------------------------------------------------------------------------------------- model


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


def compiled_parts(model: object, check_rows: FloatArray) -> list[compiled.Part]:
    """What :func:`vigie.models.compiled.compile_parts` compiles: every horizon's estimator of
    ``model`` (``fit(...).model``), checked on ``check_rows`` (the validation origins' features,
    :attr:`TrainingResult.check_rows`)."""
    if not isinstance(model, DeltaForecaster):
        raise TypeError(f"expected a DeltaForecaster from fit(), got {type(model).__name__}")
    unit = "(OT(t+h) - OT(t)) / ot_scale"
    return [
        compiled.Part(name, est, check_rows, COMPILED_TOLERANCE, unit)
        for name, est in model.compiled_parts().items()
    ]


def _candidates() -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        # Squared loss on standardised features; alpha barely matters here (1 vs 100 within 0.1 %).
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=100.0)),
        # Absolute-error loss because the service is judged on MAE and OT has spikes.
        # early_stopping off: its internal split is random, which leaks on time series and
        # makes training non-deterministic.
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            loss="absolute_error",
            learning_rate=0.05,
            max_iter=200,
            max_leaf_nodes=31,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
    }


def _describe(template: Any) -> dict[str, object]:
    """JSON-friendly description of a candidate: class names and the final estimator's params."""
    steps = [step for _, step in template.steps] if hasattr(template, "steps") else [template]
    return {"steps": [type(step).__name__ for step in steps], "params": steps[-1].get_params()}


def _train(family: str, template: Any, features: FloatArray, scaled: FloatArray) -> DeltaForecaster:
    from sklearn.base import clone

    with _single_threaded():
        estimators = [clone(template).fit(features, scaled[:, j]) for j in range(len(HORIZONS))]
    return DeltaForecaster(family=family, estimators=estimators)


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
    features, scale = _features_and_scale(values)
    # ONNX Runtime runs on one thread of its own: no OpenMP limit to set (~70 µs a call).
    openmp = not compiled.all_compiled(model.estimators)
    with _single_threaded() if openmp else contextlib.nullcontext():
        change = np.column_stack([est.predict(features) for est in model.estimators])
    ot_now = np.asarray(values, dtype=np.float64)[HISTORY_HOURS - 1 :, _OT]
    return ot_now[:, None] + change * scale[:, None]


def persistence(values: np.ndarray) -> np.ndarray:
    """Baseline with the shape of :func:`forecast`: ``OT(t+h) = OT(t)``."""
    ot_now = _check_values(values)[HISTORY_HOURS - 1 :, _OT]
    return np.repeat(ot_now[:, None], len(HORIZONS), axis=1)


# --------------------------------------------------------------------------------- evaluation


def _scored_pairs(model: object, values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(actual, model forecast, persistence) at the origins whose every horizon is known."""
    if len(values) < HISTORY_HOURS + max(HORIZONS):
        raise ValueError(
            f"need at least HISTORY_HOURS + {max(HORIZONS)} = {HISTORY_HOURS + max(HORIZONS)} "
            f"rows to score, got {len(values)}"
        )
    # One origin set for all horizons so the horizons are compared on the same cases.
    usable = len(values) - max(HORIZONS)
    base = persistence(values[:usable])
    actual = base + _targets(values)[: len(base)]
    return actual, forecast(model, values[:usable]), base


def _scores(model: object, values: FloatArray) -> dict[str, dict[str, float]]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    actual, predicted, base = _scored_pairs(model, values)
    out: dict[str, dict[str, float]] = {}
    for j, h in enumerate(HORIZONS):
        y, p, b = actual[:, j], predicted[:, j], base[:, j]
        out[f"h{h}"] = {
            "mae": float(mean_absolute_error(y, p)),
            "rmse": float(root_mean_squared_error(y, p)),
            "r2": float(r2_score(y, p)),
            "persistence_mae": float(mean_absolute_error(y, b)),
            "persistence_rmse": float(root_mean_squared_error(y, b)),
            "persistence_r2": float(r2_score(y, b)),
        }
    return out


def evaluate(model: object, frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Score ``model`` on a frame from :func:`load_series` (e.g. a later, unseen period).

    Every origin with a full history window and all horizons known is used. R² is computed on
    the absolute OT forecasts. Returns ``{"h1": {"mae", "rmse", "r2", "persistence_mae"}, ...}``.
    """
    keep = ("mae", "rmse", "r2", "persistence_mae")
    return {
        h: {k: v for k, v in s.items() if k in keep}
        for h, s in _scores(model, _values(frame)).items()
    }


# ----------------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    """Everything :func:`fit` produces; ``model`` is what :func:`forecast` needs."""

    model: object
    metrics: dict[str, dict[str, dict[str, float]]]
    validation: dict[str, object]
    thresholds: dict[str, dict[str, float]]
    features: list[dict[str, str]]
    hyperparameters: dict[str, object]
    check_rows: FloatArray  # features of the validation origins, to check the compiled form on


def _training_set(parts: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Stacked features and scaled targets of all origins whose every horizon is known."""
    xs, ys = [], []
    for values in parts:
        features, scale = _features_and_scale(values)
        scaled = _targets(values) / scale[:, None]
        known = ~np.isnan(scaled).any(axis=1)
        xs.append(features[known])
        ys.append(scaled[known])
    return np.vstack(xs), np.vstack(ys)


def _thresholds(ot: FloatArray) -> dict[str, float]:
    alerte, critique = (round(float(np.percentile(ot, q)) * 2) / 2 for q in (99.0, 99.9))
    return {"alerte_c": alerte, "critique_c": max(critique, alerte + 0.5)}


def _split(name: str, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray, dict[str, object]]:
    """Time-ordered split: training rows, validation rows and their description."""
    values = _values(frame)
    n = len(values)
    val_start = n - math.ceil(n * VALIDATION_FRACTION)
    train_end = val_start - GAP_HOURS
    need = HISTORY_HOURS + max(HORIZONS)
    if train_end < need or n - val_start < need:
        raise ValueError(
            f"{name}: {n} rows is too short for a time-ordered validation "
            f"(each slice needs at least {need} rows)"
        )
    index = frame.index
    info: dict[str, object] = {
        "train_start": str(index[0]),
        "train_end": str(index[train_end - 1]),
        "validation_start": str(index[val_start]),
        "validation_end": str(index[-1]),
        "train_rows": train_end,
        "validation_rows": n - val_start,
        "train_origins": train_end - need + 1,
        "validation_origins": n - val_start - need + 1,
    }
    return values[:train_end], values[val_start:], info


def fit(
    series: dict[str, pd.DataFrame], progress: Callable[[str], None] = lambda _msg: None
) -> TrainingResult:
    """Train one global, asset-agnostic model on all assets (frames from :func:`load_series`).

    Each candidate is fitted on the training slices of all assets and scored per asset on its
    validation slice; the candidate with the lowest MAE averaged over horizons and assets is
    refitted on the full data of all assets. Reported metrics come from the validation fit.
    """
    if not series:
        raise ValueError("fit() needs at least one asset")
    splits = {name: _split(name, frame) for name, frame in series.items()}
    for name, (_, _, info) in splits.items():
        progress(
            f"{name}: train {info['train_start']} -> {info['train_end']} "
            f"({info['train_rows']} rows), validation {info['validation_start']} -> "
            f"{info['validation_end']} ({info['validation_rows']} rows)"
        )
    train_x, train_y = _training_set([train for train, _, _ in splits.values()])

    candidates: dict[str, dict[str, object]] = {}
    mean_mae: dict[str, float] = {}
    metrics_by_candidate: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for family, template in _candidates().items():
        progress(f"fitting {family} on {len(train_x)} training origins")
        model = _train(family, template, train_x, train_y)
        metrics = {name: _scores(model, val) for name, (_, val, _) in splits.items()}
        mae = float(np.mean([m["mae"] for asset in metrics.values() for m in asset.values()]))
        metrics_by_candidate[family] = metrics
        mean_mae[family] = mae
        candidates[family] = {
            "estimator": _describe(template),
            "validation_mae": mae,
            "validation_mae_by_asset": {
                name: {h: m["mae"] for h, m in asset.items()} for name, asset in metrics.items()
            },
        }
        progress(f"{family}: validation MAE {mae:.3f} °C (mean over horizons and assets)")

    chosen = min(mean_mae, key=mean_mae.__getitem__)
    metrics = metrics_by_candidate[chosen]
    for name, asset in metrics.items():
        worse = [h for h, m in asset.items() if m["mae"] >= m["persistence_mae"]]
        if worse:
            progress(f"warning: {chosen} does not beat persistence for {name} at {worse}")

    full_x, full_y = _training_set([_values(frame) for frame in series.values()])
    progress(f"refitting {chosen} on all data ({len(full_x)} origins)")
    final = _train(chosen, _candidates()[chosen], full_x, full_y)

    validation: dict[str, object] = {
        "method": "time-ordered holdout per asset: last rows validate, training ends a gap before",
        "validation_fraction": VALIDATION_FRACTION,
        "gap_hours": GAP_HOURS,
        "assets": {name: info for name, (_, _, info) in splits.items()},
    }
    hyperparameters: dict[str, object] = {
        "model_family": chosen,
        "chosen_candidate": chosen,
        "estimator": candidates[chosen]["estimator"],
        "target": "(OT(t+h) - OT(t)) / ot_scale, one estimator per horizon",
        "history_hours": HISTORY_HOURS,
        "horizons_hours": list(HORIZONS),
        "candidates": candidates,
    }
    return TrainingResult(
        model=final,
        metrics=metrics,
        validation=validation,
        thresholds={name: _thresholds(_values(f)[:, _OT]) for name, f in series.items()},
        features=[dict(f) for f in FEATURES],
        hyperparameters=hyperparameters,
        check_rows=np.vstack([forecast_origins(val) for _, val, _ in splits.values()]),
    )
