"""What the transformer-temperature model sees: the features of a forecast origin and its target.

A forecast origin is an hourly row with ``HISTORY_HOURS`` rows of its window (itself included)
before it; ``values`` arrays are ``(n, 7)`` floats in :data:`COLUMNS` order, contiguous hourly
rows, oldest first.

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

``HISTORY_HOURS`` = 72 was chosen on the validation slice (see :mod:`.training`) during
development (with an earlier variant of these features, gradient boosting: 48 h gave a mean MAE of
1.28 °C vs 1.25 °C and lost to persistence at one horizon; 96 h brought no gain).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

FloatArray = npt.NDArray[np.float64]

COLUMNS: tuple[str, ...] = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
LOAD_COLUMNS: tuple[str, ...] = COLUMNS[:6]
HORIZONS: tuple[int, ...] = (1, 6, 24)
HISTORY_HOURS: int = 72
OT_INDEX = COLUMNS.index("OT")

_OT = OT_INDEX
_OT_LAGS = (1, 2, 3, 4, 6, 9, 12, 18, 23, 24, 36, 47, 71)
_LOAD_LAGS = (1, 3, 6, 24)
_DAYS_BACK = (24, 48)  # "same time one / two days ago" for the daily cycle
_DAILY_STEPS = (1, 6)  # only the sub-day horizons: the 24 h step one day ago is ot_change_24h
_OT_SCALE_FLOOR_C = 0.05  # keeps the scale positive on a flat (e.g. stuck-sensor) window
_LOAD_SCALE_REL = 0.05  # keeps near-constant load channels (often exactly 0) from blowing up
_LOAD_SCALE_FLOOR = 0.01

assert max(_OT_LAGS) < HISTORY_HOURS and max(_DAYS_BACK) < HISTORY_HOURS
assert max(_LOAD_LAGS) < HISTORY_HOURS


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


def check_values(values: np.ndarray) -> FloatArray:
    """``values`` as float64, or ``ValueError`` for a wrong shape, too few rows, NaN or inf."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS):
        raise ValueError(f"values must have shape (n, {len(COLUMNS)}) in {COLUMNS} order")
    if arr.shape[0] < HISTORY_HOURS:
        raise ValueError(f"need at least HISTORY_HOURS={HISTORY_HOURS} rows, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError("values contain NaN or infinite entries")
    return arr


# Column positions of the features built from pairs of window values (see features_and_scale):
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


def features_and_scale(values: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """Feature matrix and per-origin ``ot_scale`` (°C) for every full window of ``values``.

    Every value is the same as an elementwise computation per origin would give (each feature
    is one subtraction, reduction and division of window values): the blocks are written in
    place into one matrix, with one gather per group of pairs, so that a single origin (a
    request's usual case) costs few numpy calls."""
    arr = check_values(values)
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
    return features_and_scale(values)[0]


def targets(values: FloatArray) -> FloatArray:
    """OT(t+h) - OT(t) per origin and horizon; NaN where t+h is beyond the data."""
    ot = values[:, _OT]
    origins = np.arange(HISTORY_HOURS - 1, len(values))
    out = np.full((len(origins), len(HORIZONS)), np.nan)
    for j, h in enumerate(HORIZONS):
        known = origins + h < len(values)
        out[known, j] = ot[origins[known] + h] - ot[origins[known]]
    return out
