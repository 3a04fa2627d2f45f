"""What ``vigie replay`` sends: the predict requests a service makes of a CSV shaped like its
training file (:meth:`vigie.contract.service.PredictionService.replay_requests`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplayRequest:
    """One ``POST /v1/predict`` body of a replay (see :meth:`PredictionService.replay_requests`).

    ``measurements`` are JSON-ready dicts, oldest first. The last ``rows`` of them are new: they
    get predictions. The ones before are the history the service needs (``HISTORY_HOURS`` of a
    transformer, ``HISTORY_DAYS`` of a gas series), already covered by an earlier request."""

    asset_id: str
    measurements: list[dict[str, Any]]
    rows: int

    def first(self, rows: int) -> ReplayRequest:
        """The same request cut after its first ``rows`` new rows (its history kept)."""
        if rows >= self.rows:
            return self
        keep = len(self.measurements) - (self.rows - rows)
        return ReplayRequest(self.asset_id, self.measurements[:keep], rows)


def replay_windows(
    asset_id: str, measurements: Sequence[dict[str, Any]], batch: int, history: int = 0
) -> Iterator[ReplayRequest]:
    """Requests of ``batch`` new rows each over one asset's consecutive ``measurements``; each
    request also carries the ``history`` measurements before its first new row, so windows
    overlap. The first ``history`` measurements are history only (nothing to predict there)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    for start in range(history, len(measurements), batch):
        end = min(start + batch, len(measurements))
        yield ReplayRequest(asset_id, list(measurements[start - history : end]), end - start)
