"""How a service scores rows: a columnar :class:`Batch` in, arrays out, then one :class:`Scores`
per predict call.

The runtime validates each request into a :class:`Batch` (one asset's measurements, oldest
first). A service reads it as arrays (:meth:`Batch.matrix`, :meth:`Batch.column`,
:attr:`Batch.timestamps`), never as a list it has to walk itself, so that the runtime can later
build those arrays straight from the request bytes without any declaration changing.

Scoring has two steps, both declared by the service (see
:class:`vigie.contract.service.PredictionService`):

``infer(batch) -> Outputs``
    the model call: arrays in, arrays out (one entry per row along the first axis). When the
    service says its rows are independent (``rows_independent``), the runtime may join the
    batches of several calls into one (micro-batching) and slice the outputs back per call:
    services never concatenate lists themselves.
``present(batch, outputs) -> Scores``
    one call's levels and prediction items from its rows' outputs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from vigie.contract.levels import Level

#: What ``infer`` returns: named arrays with one entry per row along their first axis.
Outputs = Mapping[str, npt.NDArray[Any]]

M = TypeVar("M")


class Batch(Generic[M]):
    """The validated measurements of one predict call, with column views built on demand (once
    each): ``rows`` stay available for what arrays cannot carry (optional fields, strings)."""

    def __init__(self, asset_id: str, rows: Sequence[M]) -> None:
        self.asset_id = asset_id
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def times(self) -> list[datetime]:
        """Each row's ``timestamp`` (aware datetimes, as validated)."""
        return [m.timestamp for m in self.rows]  # type: ignore[attr-defined]

    @cached_property
    def timestamps(self) -> npt.NDArray[np.int64]:
        """Each row's ``timestamp`` as microseconds since the Unix epoch (UTC)."""
        return np.array([round(t.timestamp() * 1e6) for t in self.times], dtype=np.int64)

    def matrix(self, names: Sequence[str]) -> npt.NDArray[np.float64]:
        """The float fields ``names`` of every row, shape ``(rows, len(names))``: one pass over
        the rows for all of them (a missing optional value is NaN)."""
        key = tuple(names)
        cache: dict[tuple[str, ...], npt.NDArray[np.float64]] = self.__dict__.setdefault(
            "_matrices", {}
        )
        found = cache.get(key)
        if found is None:
            get = operator.attrgetter(*key)
            if len(key) == 1:
                values = [get(m) for m in self.rows]
                found = np.array(values, dtype=np.float64).reshape(len(self.rows), 1)
            else:
                found = np.array([get(m) for m in self.rows], dtype=np.float64)
                found = found.reshape(len(self.rows), len(key))
            cache[key] = found
        return found

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One float field of every row (NaN where an optional field is absent)."""
        return self.matrix((name,))[:, 0]

    def slice(self, start: int, stop: int) -> Batch[M]:
        """Rows ``start:stop`` as a batch of the same asset."""
        return Batch(self.asset_id, self.rows[start:stop])


def slice_outputs(outputs: Outputs, start: int, stop: int) -> Outputs:
    return {k: v[start:stop] for k, v in outputs.items()}


@dataclass(frozen=True)
class LevelDetail:
    """Why a prediction has its level; becomes the level event's value/threshold/message."""

    value: float | None
    unit: str | None
    threshold: float | None
    message: str


@dataclass(frozen=True)
class Points:
    """Forecast values an observation can later be compared with (``POST /v1/feedback``),
    columnar: point ``k`` belongs to row ``row[k]`` and is about ``time[k]``."""

    target: str
    row: Sequence[int]
    horizon: Sequence[str]
    time: Sequence[datetime]
    value: Sequence[float]

    @classmethod
    def one_per_row(
        cls, target: str, horizon: str, times: Sequence[datetime], values: Sequence[float]
    ) -> Points:
        n = len(times)
        return cls(target, range(n), [horizon] * n, times, values)


@dataclass(frozen=True)
class BatchSummary:
    """What a whole request says, beyond its items (e.g. a significance over a batch of events).

    ``body`` goes into the response as ``summary``; ``detail`` (with ``timestamp``) describes the
    level event instead of the worst item. Item levels still decide the response level, so a
    service whose level belongs to the batch gives its items that level."""

    body: dict[str, Any]
    detail: LevelDetail | None = None
    timestamp: datetime | None = None


@dataclass
class Scores:
    """One predict call's result, row ``i`` of each sequence being prediction ``i``.

    ``items`` are the JSON-ready prediction bodies (the runtime adds ``timestamp`` and
    ``level``); ``explain(i)`` says why row ``i`` has its level: the runtime asks it for the
    row the level event is about only, so a message is built once per call, not once per row.
    ``times`` defaults to the batch's timestamps (a forecast service may answer fewer rows
    than it was sent: the ones with enough history)."""

    levels: Sequence[Level]
    items: list[dict[str, Any]]
    explain: Callable[[int], LevelDetail]
    times: Sequence[datetime] | None = None
    points: Points | None = None
    summary: BatchSummary | None = None
    #: which input rows the predictions are about (default: all, in order); the log keeps
    #: those rows' measurements with each prediction
    rows: Sequence[int] | None = None
