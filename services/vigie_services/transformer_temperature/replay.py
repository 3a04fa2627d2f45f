"""``vigie replay`` of an ETT-format CSV: the predict requests a SCADA integration would send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vigie.contract.replay import ReplayRequest, replay_windows
from vigie_services.transformer_temperature.data import load_series
from vigie_services.transformer_temperature.features import COLUMNS, HISTORY_HOURS


def replay_requests(data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
    """Windows of ``HISTORY_HOURS - 1 + batch`` hourly rows, each giving ``batch`` forecasts
    (the first ``HISTORY_HOURS - 1`` rows of the file are history only). The file's dates carry
    no time zone: they are sent as written, as UTC. Default asset: the file name up to its first
    ``_`` (``ETTh1_train.csv`` -> ``ETTh1``). ``ValueError`` for an unusable file, at once."""
    series = load_series(data)
    values = series[list(COLUMNS)].to_numpy().tolist()
    rows = [
        {"timestamp": f"{ts:%Y-%m-%dT%H:%M:%SZ}", **dict(zip(COLUMNS, row, strict=True))}
        for ts, row in zip(series.index, values, strict=True)
    ]
    asset_id = asset or data.stem.split("_")[0]
    return replay_windows(asset_id, rows, batch, history=HISTORY_HOURS - 1)
