"""CSV files shaped like ``turbine_nox/train.csv`` (9 inputs, ``CO``, ``NOX``, ``year``): reading
them for training and evaluation, and the predict requests ``vigie replay`` makes of them.

pandas is imported by each function: the service imports this module, a serving worker must not
load pandas (see :mod:`vigie_services.turbine_nox.pems`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vigie.contract.replay import ReplayRequest, replay_windows
from vigie_services.turbine_nox.pems import INPUTS, TARGETS, YEAR

if TYPE_CHECKING:
    import pandas as pd

REPLAY_START_YEAR = 2015  # rows of a file without a year column: the year after the training data


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


def replay_requests(data: Path, asset_id: str, batch: int) -> Iterator[ReplayRequest]:
    """Hourly rows in file order, ``batch`` per request, with the analyser's ``NOX`` and ``CO``
    when the file has both (so the turbine's correction learns as it would on site; each row is
    scored before its own values are learned). The file has no timestamps, only ``year``, and
    the rows of a year are hourly in order: row k of year Y is sent at Y-01-01 00:00Z + k h
    (without ``year``, from :data:`REPLAY_START_YEAR`)."""
    import pandas as pd

    with_targets = set(TARGETS) <= set(pd.read_csv(data, nrows=0).columns)
    frame = load_frame(data, need_targets=with_targets)
    if YEAR in frame.columns:
        years = frame[YEAR].astype(int)
    else:
        years = pd.Series(REPLAY_START_YEAR, index=frame.index)
    hours = pd.to_timedelta(years.groupby(years).cumcount(), unit="h")
    times = pd.to_datetime(years.astype(str) + "-01-01", utc=True) + hours
    if (times.dt.year != years).any():
        raise ValueError(f"{data}: a year has more rows than hours")
    columns = [*INPUTS, *(TARGETS if with_targets else ())]
    rows = [
        {"timestamp": f"{ts:%Y-%m-%dT%H:%M:%SZ}", **dict(zip(columns, values, strict=True))}
        for ts, values in zip(times, frame[columns].to_numpy().tolist(), strict=True)
    ]
    return replay_windows(asset_id, rows, batch)
