"""The training chores every service shares: find its data files, describe them on the card,
time the fit. A service's :meth:`~vigie.contract.service.PredictionService.train` fits and
states its metrics; :func:`run_training` is what ``vigie train`` calls around it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigie.models.store import sha256_file

if TYPE_CHECKING:
    from vigie.contract.service import PredictionService, Progress, TrainedModel


def data_files(data_dir: Path, *relative: str | Path) -> list[Path]:
    """The training files ``relative`` to the data directory; :class:`FileNotFoundError`
    naming every missing one."""
    paths = [data_dir / r for r in relative]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"training data not found: {', '.join(missing)}")
    return paths


def describe_file(
    path: Path, rows: int, start: object | None = None, end: object | None = None
) -> dict[str, Any]:
    """One ``training_data`` entry of a card (design.md section 6): path, sha256, rows and,
    when the data is dated, its time range (``start``/``end`` as given, ISO strings for
    datetimes)."""
    entry: dict[str, Any] = {"path": str(path), "sha256": sha256_file(path), "rows": rows}
    if start is not None and end is not None:
        entry["time_range"] = {"start": _iso(start), "end": _iso(end)}
    return entry


def _iso(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def run_training(
    service: PredictionService[Any, Any], data_dir: Path, progress: Progress
) -> TrainedModel:
    """``service.train`` timed, with the card fields the runtime owns (``title``,
    ``training_time_s``) added where the service did not set them."""
    started = time.perf_counter()
    trained = service.train(data_dir, progress)
    trained.card.setdefault("title", service.title)
    trained.card.setdefault("training_time_s", round(time.perf_counter() - started, 2))
    return trained
