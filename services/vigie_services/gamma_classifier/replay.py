"""``vigie replay gamma-classifier``: the events of a ``gamma/train.csv``-shaped file as predict
requests, ``batch`` events each, in file order (the ``class`` column is not sent).

The file has no arrival times, so events get synthetic ones: :data:`REPLAY_START`
(2004-01-01T00:00:00Z, the data set's year: Monte Carlo events) and then one every
:data:`REPLAY_EVENT_INTERVAL` (1 s), distinct and increasing as feedback needs them. Default
asset: :data:`REPLAY_ASSET`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigie.contract.replay import ReplayRequest, replay_windows
from vigie_services.gamma_classifier.data import load_events
from vigie_services.gamma_classifier.features import COLUMNS

REPLAY_ASSET = "MAGIC-1"
REPLAY_START = datetime(2004, 1, 1, tzinfo=UTC)
REPLAY_EVENT_INTERVAL = timedelta(seconds=1)


def replay_requests(data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
    """The requests of ``data`` (``ValueError`` for an unusable file, raised at the call)."""
    values, _ = load_events(data)
    events = [
        {
            "timestamp": (REPLAY_START + i * REPLAY_EVENT_INTERVAL).isoformat(),
            **dict(zip(COLUMNS, row, strict=True)),
        }
        for i, row in enumerate(values.tolist())
    ]
    return replay_windows(asset or REPLAY_ASSET, events, batch)
