"""Data of the ``energy-anomaly`` service: the CSV format, series ids, French holidays, injection.

CSV format
----------
``gas_regional_daily_train.csv`` (README section 5a): one row per gas day and series, columns
``date`` (YYYY-MM-DD), ``opérateur``, ``région``, the 24 hourly columns ``00:00`` … ``23:00``
(MWh, PCS 0 °C), the daily total ``consommation_journalière_(mwh_-_pcs_0°c)`` (MWh) and
``movement_social`` (True/False). Other columns are ignored. An empty hourly cell is a missing
hour; an empty daily total is rebuilt from the hours.

Series ids
----------
One series is an operator x region. Its id (the API's ``asset_id``) is
``<operator>.<region>`` in lower case with accents stripped and every run of characters outside
``[a-z0-9-]`` replaced by ``-``: ``GRTgaz`` + ``auvergne-rhône-alpes`` ->
``grtgaz.auvergne-rhone-alpes``; ``Teréga`` + ``provence-alpes-côte d'azur`` ->
``terega.provence-alpes-cote-d-azur``; ``île-de-france`` -> ``ile-de-france``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

# pandas is imported where a CSV or a frame is handled (training, evaluation, replay), never at
# import: serving uses this module's ids, calendar and kinds only, and must not pay for pandas.
if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

HOURS: tuple[str, ...] = tuple(f"{h:02d}:00" for h in range(24))
DAILY = "consommation_journalière_(mwh_-_pcs_0°c)"
OPERATOR = "opérateur"
REGION = "région"
MOVEMENT = "movement_social"
IS_ANOMALY = "is_anomaly"
REQUIRED: tuple[str, ...] = ("date", OPERATOR, REGION, *HOURS, DAILY, MOVEMENT)

TRAIN_FILE = Path("energy") / "gas_regional_daily_train.csv"

# Kinds of anomaly (also the values of a prediction's ``kinds``).
SPIKE = "spike"
DROP = "drop"
STUCK = "stuck_meter"
SHIFTED = "shifted_profile"
MISSING = "missing_hours"
UNUSUAL = "unusual_profile"
INJECTED_KINDS: tuple[str, ...] = (SPIKE, DROP, STUCK, SHIFTED, MISSING)


def series_id(operator: str, region: str) -> str:
    """The ASCII id of an operator x region series (see the module docstring)."""

    def slug(text: str) -> str:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^a-z0-9-]+", "-", ascii_text.lower()).strip("-")

    return f"{slug(operator)}.{slug(region)}"


# ------------------------------------------------------------------------------------ calendar


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


@cache
def french_holidays(year: int) -> frozenset[date]:
    """The 11 public holidays of metropolitan France (Alsace-Moselle extras not included)."""
    e = easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    moving = [e + timedelta(days=1), e + timedelta(days=39), e + timedelta(days=50)]
    return frozenset([date(year, m, d) for m, d in fixed] + moving)


def is_holiday(day: date) -> bool:
    return day in french_holidays(day.year)


def is_bridge(day: date) -> bool:
    """A Monday before a Tuesday holiday or a Friday after a Thursday holiday."""
    wd = day.weekday()
    return (wd == 0 and is_holiday(day + timedelta(days=1))) or (
        wd == 4 and is_holiday(day - timedelta(days=1))
    )


def is_year_end(day: date) -> bool:
    """24 December to 2 January: the year-end break (many sites closed)."""
    return (day.month == 12 and day.day >= 24) or (day.month == 1 and day.day <= 2)


# ---------------------------------------------------------------------------------------- load


def _as_bool(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.strip().str.lower()
    known = text.isin(["true", "false", "1", "0", "1.0", "0.0", "nan", ""])
    if not known.all():
        raise ValueError(f"'{MOVEMENT}' must be True/False, got {values[~known].iloc[0]!r}")
    return text.isin(["true", "1", "1.0"])


def load_frame(path: str | Path) -> pd.DataFrame:
    """Read a CSV of the training-file format into a tidy frame.

    Columns of the result: ``series`` (id), ``date`` (Timestamp, midnight), the 24 ``HOURS``
    (float, NaN = missing), ``daily`` (float, NaN when absent), ``movement`` (bool) and, when the
    file has it, ``is_anomaly`` (0/1). Rows are sorted by series and date. Raises ``ValueError``
    naming missing columns, bad values, negative consumption or duplicate (series, date) rows.
    """
    import pandas as pd

    path = Path(path)
    frame = pd.read_csv(path, low_memory=False)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{path}: no data rows")
    try:
        dates = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: 'date' must be YYYY-MM-DD: {exc}") from exc
    out = pd.DataFrame(
        {
            "series": [
                series_id(str(o), str(r))
                for o, r in zip(frame[OPERATOR], frame[REGION], strict=True)
            ],
            "date": dates,
        }
    )
    values = frame[[*HOURS, DAILY]].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = values.notna() != frame[[*HOURS, DAILY]].notna()
    if bad.any().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise ValueError(
            f"{path}: non-numeric value in row {row + 2}, column {values.columns[col]}"
        )
    if (values < 0).any().any() or np.isinf(values.to_numpy()).any():
        raise ValueError(f"{path}: negative or infinite consumption")
    for h in HOURS:
        out[h] = values[h].to_numpy()
    out["daily"] = values[DAILY].to_numpy()
    out["movement"] = _as_bool(frame[MOVEMENT]).to_numpy()
    out["operator"] = frame[OPERATOR].astype(str).to_numpy()
    out["region"] = frame[REGION].astype(str).to_numpy()
    if IS_ANOMALY in frame.columns:
        flags = pd.to_numeric(frame[IS_ANOMALY], errors="coerce")
        if not flags.isin([0, 1]).all():
            raise ValueError(f"{path}: '{IS_ANOMALY}' must be 0 or 1")
        out[IS_ANOMALY] = flags.astype(int).to_numpy()
    if out.duplicated(["series", "date"]).any():
        first = out[out.duplicated(["series", "date"])].iloc[0]
        raise ValueError(f"{path}: duplicate row for {first['series']} on {first['date']:%Y-%m-%d}")
    return out.sort_values(["series", "date"]).reset_index(drop=True)


def split_series(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One frame per series, indexed by date, reindexed to every day (gaps become NaN rows)."""
    import pandas as pd

    out = {}
    for sid, part in frame.groupby("series", sort=True):
        part = part.set_index("date").drop(columns=["series", "operator", "region"])
        full = pd.date_range(part.index[0], part.index[-1], freq="D")
        part = part.reindex(full)
        part["movement"] = part["movement"].fillna(False).astype(bool)
        out[str(sid)] = part
    return out


# ------------------------------------------------------------------------------------ injection


def inject_anomalies(
    frame: pd.DataFrame, rate: float, seed: int, kinds: tuple[str, ...] = INJECTED_KINDS
) -> pd.DataFrame:
    """A copy of ``frame`` (from :func:`load_frame`, or one series indexed by date with the same
    columns) where a fraction ``rate`` of the days carries one injected anomaly.

    Adds ``is_anomaly`` (0/1) and ``anomaly_kind`` ("" for untouched days). The first 14 days of
    each series are never touched (they are history for the forecast). Each chosen day gets one
    kind, drawn uniformly from ``kinds``:

    * ``spike`` / ``drop``: every hour (and the daily total) multiplied by a factor drawn from
      [1.3, 1.8] / [0.3, 0.7];
    * ``stuck_meter``: half the cases a flat profile (every hour = the daily mean, total kept),
      half an exact copy of the previous day's hours and total;
    * ``shifted_profile``: the 24 hourly values rotated by 3 to 8 hours (either direction), total
      kept (a clock / time-zone error);
    * ``missing_hours``: 1 to 6 hours (a contiguous block) set to NaN; the daily total is kept.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out[IS_ANOMALY] = 0
    out["anomaly_kind"] = ""
    hours = list(HOURS)
    groups = out.groupby("series").indices if "series" in out.columns else {"": np.arange(len(out))}
    for positions in groups.values():
        positions = np.sort(positions)
        candidates = positions[14:]
        chosen = candidates[rng.random(len(candidates)) < rate]
        for pos in chosen:
            kind = kinds[rng.integers(len(kinds))]
            row = out.iloc[pos]
            values = row[hours].to_numpy(dtype=float)
            daily = float(row["daily"])
            if kind in (SPIKE, DROP):
                factor = rng.uniform(1.3, 1.8) if kind == SPIKE else rng.uniform(0.3, 0.7)
                values, daily = values * factor, daily * factor
            elif kind == STUCK:
                if rng.random() < 0.5:
                    values = np.full(24, np.nansum(values) / 24)
                else:
                    prev = out.iloc[pos - 1]
                    values = prev[hours].to_numpy(dtype=float)
                    daily = float(prev["daily"])
            elif kind == SHIFTED:
                shift = int(rng.integers(3, 9)) * (1 if rng.random() < 0.5 else -1)
                values = np.roll(values, shift)
            else:  # missing hours
                n = int(rng.integers(1, 7))
                start = int(rng.integers(0, 24 - n + 1))
                values = values.copy()
                values[start : start + n] = np.nan
            label = out.index[pos]
            out.loc[label, hours] = values
            out.loc[label, "daily"] = daily
            out.loc[label, IS_ANOMALY] = 1
            out.loc[label, "anomaly_kind"] = kind
    return out


def to_training_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a :func:`load_frame`-shaped frame back in the training-file format (with
    ``is_anomaly`` when the frame has it)."""
    import pandas as pd

    out = pd.DataFrame(
        {
            "date": frame["date"].dt.strftime("%Y-%m-%d"),
            OPERATOR: frame["operator"].to_numpy(),
            "secteur_d'activité": "GRD/ELD",
            REGION: frame["region"].to_numpy(),
        }
    )
    for h in HOURS:
        out[h] = frame[h].to_numpy()
    out[DAILY] = frame["daily"].to_numpy()
    out["statut"] = "Définitif"
    out[MOVEMENT] = frame["movement"].to_numpy()
    out["motif"] = ""
    if IS_ANOMALY in frame.columns:
        out[IS_ANOMALY] = frame[IS_ANOMALY].to_numpy()
    out.to_csv(path, index=False)
