"""ETT-format CSV files (``date`` + :data:`~.features.COLUMNS`, hourly rows) as frames and arrays.

pandas is imported when a file is read, never at import (see :mod:`.forecasting`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vigie_services.transformer_temperature.features import COLUMNS, FloatArray

if TYPE_CHECKING:
    import pandas as pd

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


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
        index = pd.to_datetime(frame["date"], format=DATE_FORMAT)
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


def values_of(frame: pd.DataFrame) -> FloatArray:
    """The :data:`COLUMNS` of ``frame`` as a float64 ``(n, 7)`` array."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing column(s): {', '.join(missing)}")
    return frame[list(COLUMNS)].to_numpy(dtype=np.float64)
