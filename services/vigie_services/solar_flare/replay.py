"""``vigie replay solar-flare``: one ``summary`` day per row of a ``daily_train.csv``-shaped
file, in date order, ``batch`` days per request (the ``_next_24h`` targets are not sent; the
optional ``sunspot_number_std`` / ``sunspot_n_obs`` only when the row has them). Every day is
forecast on its own: no history is sent. Default asset: :data:`REPLAY_ASSET`."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from vigie.contract.replay import ReplayRequest, replay_windows
from vigie_services.solar_flare import summary as sm

REPLAY_ASSET = "SUN"


def replay_requests(data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
    """The requests of ``data`` (``ValueError`` for an unusable file, raised at the call)."""
    table = sm.load_table(data)
    days = [
        {"timestamp": f"{row['date']:%Y-%m-%d}T00:00:00Z", "summary": _summary_json(row)}
        for row in table.to_dict("records")
    ]
    return replay_windows(asset or REPLAY_ASSET, days, batch)


def _summary_json(row: Mapping[Hashable, Any]) -> dict[str, Any]:
    """The ``summary`` object of one table row (ints where the schema wants ints)."""
    import pandas as pd  # replay only: never in a serving worker

    out: dict[str, Any] = {}
    for col in sm.SUMMARY_COLUMNS:
        value = row.get(col.name)
        if value is None or pd.isna(value):
            continue  # only the optional columns can be absent: load_table checked the others
        out[col.name] = int(value) if col.kind is int else float(value)
    return out
