"""``vigie replay energy-anomaly``: the predict requests of a CSV shaped like the training file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigie.contract.replay import ReplayRequest, replay_windows
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import model as md

if TYPE_CHECKING:
    import pandas as pd


def replay_requests(data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
    """Each series of the file in turn (only ``asset`` when given), in date order: windows
    of ``HISTORY_DAYS + batch`` consecutive days that get ``batch`` predictions each. A day
    without any value (a gap in the file, or every hour and the total empty) cannot be
    sent, so it splits the series into runs replayed separately, each starting with
    ``HISTORY_DAYS`` days of history only."""
    frame = dt.load_frame(data)
    if asset is not None:
        frame = frame[frame["series"] == asset]
        if frame.empty:
            raise ValueError(f"no row of series {asset!r} in {data}")
    runs = [
        (sid, run) for sid, part in dt.split_series(frame).items() for run in _runs_with_data(part)
    ]
    return (
        request
        for sid, run in runs
        for request in replay_windows(sid, run, batch, history=md.HISTORY_DAYS)
    )


def _runs_with_data(part: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """The day measurements of one series (from ``data.split_series``), split at empty days."""
    import pandas as pd

    runs: list[list[dict[str, Any]]] = [[]]
    hours = part[list(dt.HOURS)].to_numpy(dtype=float)
    for day, values, daily, movement in zip(
        part.index, hours, part["daily"], part["movement"], strict=True
    ):
        if np.isnan(values).all() and pd.isna(daily):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(
            {
                "timestamp": f"{day:%Y-%m-%d}T00:00:00Z",
                "hourly_mwh": [None if np.isnan(v) else float(v) for v in values],
                "daily_mwh": None if pd.isna(daily) else float(daily),
                "movement_social": bool(movement),
            }
        )
    return [run for run in runs if run]
