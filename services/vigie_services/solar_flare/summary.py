"""Daily summaries of solar activity: the columns of ``daily_train.csv`` and how the raw
material of a day becomes one.

This module is the single definition of what a day's summary is, shared by training, evaluation
and serving:

* :data:`SUMMARY_COLUMNS`: the summary columns (unit, type, physical bounds), the model inputs
  among them (:data:`MODEL_INPUTS`) and their positions in an inputs matrix
  (:data:`INPUT_POSITION`);
* :func:`summary_from_raw` turns the raw material of one UTC day *d* (the GOES flare events that
  peaked on *d-26 … d* and the 27 daily sunspot numbers of *d-26 … d*) into those columns, with
  the data set's definitions (its README, section 4a);
* :func:`load_table` reads ``daily_train.csv`` (or a later CSV with its columns).

The model features are built from summaries by :mod:`.features`, whatever the summary came from:
a request that sends raw material and one that sends the equivalent summary get the same
probabilities. :mod:`.consistency` says which summaries no real day can have.

Definitions (as in the data set): a flare counts on the UTC date of its peak; its peak flux comes
from its GOES class (``A`` = 1e-8, ``B`` = 1e-7, ``C`` = 1e-6, ``M`` = 1e-5, ``X`` = 1e-4 W/m²,
times the magnitude, so ``M2.3`` is 2.3e-5 W/m²); windows "last *k* days" include day *d*; a
``max_xray_flux_*`` of 0 means no listed flare; ``sunspot_number_mean_27d`` is rounded to 2
decimals.

Raw windows are 27 days long, so :func:`summary_from_raw` cannot see an M or X flare older than
*d-26*: when none is in the window, ``days_since_last_M_or_X`` / ``days_since_last_X`` are
:data:`DAYS_SINCE_CAP` (27, read "27 or more"), where the data set counts on up to 365.
:func:`.features.features` clips both columns at :data:`DAYS_SINCE_CAP`, so the two agree on
every input the model sees.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

# pandas is imported where the CSV is read, never at import: serving builds its matrices without
# it (features.features_matrix, consistency.inconsistent_rows): a worker must not pay for it.
if TYPE_CHECKING:
    import pandas as pd


WINDOW_DAYS = 27  # one solar rotation: the raw history a day needs (d-26 .. d)
DAYS_SINCE_CAP = WINDOW_DAYS  # what the raw window can tell; features clip at this too
DAYS_SINCE_MAX = 365  # the data set's cap

CLASS_BASE_W_M2: dict[str, float] = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
# A letter, then a magnitude with optional decimals ("M2.3", "X10", "C5"); checked > 0 below.
CLASS_PATTERN = r"^[ABCMX][0-9]+(\.[0-9]+)?$"
_CLASS_RE = re.compile(CLASS_PATTERN)
MAX_X_MAGNITUDE = 100.0  # largest recorded flare ~X28 (saturated); X100 would be 1e-2 W/m²

COUNT_CLASSES = ("C", "M", "X")
COUNT_WINDOWS = (3, 7, 27)

TARGETS: dict[str, str] = {
    "c": "flare_C_or_above_next_24h",
    "m": "flare_M_or_above_next_24h",
    "x": "flare_X_next_24h",
}
TARGET_LABELS = {"c": ">=C", "m": ">=M", "x": "X"}
# Persistence ("a flare of that class today means one tomorrow") counts these columns.
PERSISTENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "c": ("n_C_flares_today", "n_M_flares_today", "n_X_flares_today"),
    "m": ("n_M_flares_today", "n_X_flares_today"),
    "x": ("n_X_flares_today",),
}


@dataclass(frozen=True)
class Column:
    """One summary column of ``daily_train.csv``: name, unit, type and physical bounds."""

    name: str
    unit: str
    description: str
    kind: type  # int or float
    ge: float
    le: float
    model_input: bool = True


def _counts() -> list[Column]:
    cols = [
        Column(
            f"n_{c}_flares_today",
            "count",
            f"number of GOES {c}-class flares peaking on day d",
            int,
            0,
            1000,
        )
        for c in ("B", *COUNT_CLASSES)
    ]
    cols += [
        Column(
            f"n_{c}_flares_last_{w}d",
            "count",
            f"number of GOES {c}-class flares peaking on d-{w - 1} .. d (day d included)",
            int,
            0,
            10000,
        )
        for c in COUNT_CLASSES
        for w in COUNT_WINDOWS
    ]
    return cols


SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("sunspot_number", "SN v2 (count)", "SILSO daily total sunspot number of day d",
           float, 0, 1000),
    Column("sunspot_number_std", "SN units",
           "its standard deviation across stations (informational, not a model input)",
           float, 0, 1000, model_input=False),
    Column("sunspot_n_obs", "count",
           "number of observations used (informational, not a model input: the observing "
           "network grew over the years, so it encodes time rather than activity)",
           int, 0, 100000, model_input=False),
    Column("sunspot_number_mean_27d", "SN units", "mean sunspot number over d-26 .. d",
           float, 0, 1000),
    Column("sunspot_number_change_1d", "SN units", "SN(d) - SN(d-1)", float, -1000, 1000),
    *_counts(),
    Column("max_xray_flux_today", "W/m² (GOES 1-8 Å)",
           "largest flare peak flux on day d (0 = no listed flare)", float, 0, 1e-2),
    Column("max_xray_flux_last_3d", "W/m² (GOES 1-8 Å)",
           "largest flare peak flux over d-2 .. d (0 = no listed flare)", float, 0, 1e-2),
    Column("max_xray_flux_last_27d", "W/m² (GOES 1-8 Å)",
           "largest flare peak flux over d-26 .. d (0 = no listed flare)", float, 0, 1e-2),
    Column("days_since_last_M_or_X", "days",
           "days since the last >=M flare (0 = today; capped at 365; the model uses at most 27)",
           int, 0, DAYS_SINCE_MAX),
    Column("days_since_last_X", "days",
           "days since the last X flare (0 = today; capped at 365; the model uses at most 27)",
           int, 0, DAYS_SINCE_MAX),
)  # fmt: skip
SUMMARY_NAMES: tuple[str, ...] = tuple(c.name for c in SUMMARY_COLUMNS)
MODEL_INPUTS: tuple[str, ...] = tuple(c.name for c in SUMMARY_COLUMNS if c.model_input)
FLUX_COLUMNS = ("max_xray_flux_today", "max_xray_flux_last_3d", "max_xray_flux_last_27d")
COUNT_COLUMNS = tuple(c.name for c in SUMMARY_COLUMNS if c.name.startswith("n_"))
DAYS_SINCE_COLUMNS = ("days_since_last_M_or_X", "days_since_last_X")
#: column positions in a :data:`MODEL_INPUTS` matrix (what serving builds, one row per day)
INPUT_POSITION: dict[str, int] = {name: i for i, name in enumerate(MODEL_INPUTS)}
_INPUTS_OF = operator.itemgetter(*MODEL_INPUTS)


def inputs_matrix(summaries: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
    """The :data:`MODEL_INPUTS` matrix ``(days, inputs)`` of summaries given as dicts (what
    serving holds: no DataFrame), in one C call per day."""
    rows = [_INPUTS_OF(s) for s in summaries]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(MODEL_INPUTS))


# ------------------------------------------------------------------------------ class strings


class FlareClassError(ValueError):
    """A GOES class string that is not a letter A/B/C/M/X followed by a magnitude > 0."""


def parse_flare_class(text: str) -> tuple[str, float, float]:
    """``"M2.3"`` -> ``("M", 2.3, 2.3e-5)``: letter, magnitude and peak flux in W/m².

    The letter is one of A, B, C, M, X (upper case); the magnitude is a decimal number > 0,
    below 10 for A-M (``C12`` is written ``M1.2``) and at most 100 for X.
    """
    if not isinstance(text, str) or not _CLASS_RE.fullmatch(text):
        raise FlareClassError(
            f"invalid GOES class {text!r}: expected a letter A, B, C, M or X followed by a "
            "magnitude, e.g. M2.3, X1.0, C5"
        )
    letter, magnitude = text[0], float(text[1:])
    if magnitude <= 0:
        raise FlareClassError(f"invalid GOES class {text!r}: the magnitude must be > 0")
    if letter != "X" and magnitude >= 10:
        raise FlareClassError(
            f"invalid GOES class {text!r}: {letter} magnitudes are below 10 "
            f"(a {letter}{magnitude:g} is written with the next letter)"
        )
    if magnitude > MAX_X_MAGNITUDE:
        raise FlareClassError(f"invalid GOES class {text!r}: X magnitude above {MAX_X_MAGNITUDE}")
    return letter, magnitude, magnitude * CLASS_BASE_W_M2[letter]


def flare_class_of_flux(flux: float) -> str:
    """The class string of a peak flux in W/m² (``2.3e-5`` -> ``"M2.3"``), 1 decimal."""
    if not flux > 0:
        raise ValueError(f"flux must be > 0 W/m², got {flux}")
    for letter in ("X", "M", "C", "B", "A"):
        base = CLASS_BASE_W_M2[letter]
        if flux >= base or letter == "A":
            return f"{letter}{flux / base:.1f}"
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------- raw -> summary


@dataclass(frozen=True)
class FlareEvent:
    """One GOES flare of the raw history: its class string and its peak time (aware)."""

    goes_class: str
    peak_time: datetime


def utc_day(ts: datetime) -> date:
    """The UTC calendar date of an aware timestamp."""
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {ts.isoformat()} has no UTC offset")
    return ts.astimezone(UTC).date()


def window_offset(day: date, peak_time: datetime) -> int:
    """Days from the flare's UTC peak date to ``day`` (0 = on day d); must be in 0 .. 26."""
    offset = (day - utc_day(peak_time)).days
    if not 0 <= offset < WINDOW_DAYS:
        raise ValueError(
            f"flare peak {peak_time.isoformat()} is outside the {WINDOW_DAYS}-day window "
            f"{(day - timedelta(days=WINDOW_DAYS - 1)).isoformat()} .. {day.isoformat()} "
            "(UTC dates)"
        )
    return offset


def summary_from_raw(
    day: date,
    flares: Iterable[FlareEvent],
    sunspot_numbers: Sequence[float],
    sunspot_number_std: float | None = None,
    sunspot_n_obs: int | None = None,
) -> dict[str, Any]:
    """The ``daily_train.csv`` summary of UTC day ``day`` from its raw material.

    ``flares``: every GOES flare (any class A-X) that peaked on ``day - 26 .. day``;
    ``sunspot_numbers``: the 27 daily sunspot numbers of ``day - 26 .. day``, oldest first.
    ``sunspot_number_std`` / ``sunspot_n_obs`` are passed through (None when not given). Returns
    ``{"date": "YYYY-MM-DD", <every column of SUMMARY_NAMES>}``. Raises ``ValueError`` (or
    :class:`FlareClassError`) on a bad class string, a peak outside the window or a sunspot
    history that is not 27 finite values >= 0.
    """
    sn = [float(v) for v in sunspot_numbers]
    if len(sn) != WINDOW_DAYS:
        raise ValueError(
            f"needs the {WINDOW_DAYS} daily sunspot numbers of d-{WINDOW_DAYS - 1} .. d "
            f"(oldest first), got {len(sn)}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in sn):
        raise ValueError("sunspot numbers must be finite and >= 0")

    counts = {c: [0] * WINDOW_DAYS for c in ("B", *COUNT_CLASSES)}  # index = offset
    max_flux = [0.0] * WINDOW_DAYS
    for event in flares:
        letter, _magnitude, flux = parse_flare_class(event.goes_class)
        offset = window_offset(day, event.peak_time)
        if letter in counts:
            counts[letter][offset] += 1
        max_flux[offset] = max(max_flux[offset], flux)

    out: dict[str, Any] = {
        "date": day.isoformat(),
        "sunspot_number": sn[-1],
        "sunspot_number_std": sunspot_number_std,
        "sunspot_n_obs": sunspot_n_obs,
        "sunspot_number_mean_27d": round(sum(sn) / WINDOW_DAYS, 2),
        "sunspot_number_change_1d": sn[-1] - sn[-2],
    }
    for letter in ("B", *COUNT_CLASSES):
        out[f"n_{letter}_flares_today"] = counts[letter][0]
    for letter in COUNT_CLASSES:
        for w in COUNT_WINDOWS:
            out[f"n_{letter}_flares_last_{w}d"] = sum(counts[letter][:w])
    out["max_xray_flux_today"] = max_flux[0]
    out["max_xray_flux_last_3d"] = max(max_flux[:3])
    out["max_xray_flux_last_27d"] = max(max_flux)

    def days_since(letters: tuple[str, ...]) -> int:
        hits = [k for k in range(WINDOW_DAYS) if any(counts[c][k] for c in letters)]
        return hits[0] if hits else DAYS_SINCE_CAP

    out["days_since_last_M_or_X"] = days_since(("M", "X"))
    out["days_since_last_X"] = days_since(("X",))
    return {k: out[k] for k in ("date", *SUMMARY_NAMES)}


def persistence(summary_table: pd.DataFrame, key: str) -> npt.NDArray[np.bool_]:
    """Persistence forecast of class ``key`` (c/m/x): a flare of that class or above today."""
    cols = list(PERSISTENCE_COLUMNS[key])
    flags: npt.NDArray[np.bool_] = summary_table[cols].to_numpy().sum(axis=1) > 0
    return flags


# ------------------------------------------------------------------------------------ the file


def load_table(path: Any) -> pd.DataFrame:
    """``daily_train.csv`` (or a later CSV with its columns), sorted by date, validated."""
    import pandas as pd

    frame = pd.read_csv(path)
    needed = ["date", *MODEL_INPUTS, *TARGETS.values()]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s): {', '.join(missing)}")
    try:
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: column date must be YYYY-MM-DD: {exc}") from None
    frame = frame.sort_values("date").reset_index(drop=True)
    used = frame[[*MODEL_INPUTS, *TARGETS.values()]]
    numeric = used.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().any(axis=1) | ~np.isfinite(numeric.to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        first = frame.loc[bad.to_numpy(), "date"].iloc[0]
        raise ValueError(f"{path}: missing or non-numeric value(s), first on {first:%Y-%m-%d}")
    if frame["date"].duplicated().any():
        first = frame.loc[frame["date"].duplicated(), "date"].iloc[0]
        raise ValueError(f"{path}: duplicate date {first:%Y-%m-%d}")
    for col in TARGETS.values():
        if not numeric[col].isin([0, 1]).all():
            raise ValueError(f"{path}: column {col} must be 0/1")
    frame[list(numeric.columns)] = numeric
    return frame
