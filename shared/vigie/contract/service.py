"""What a prediction service declares; the runtime (:mod:`vigie.serve.app`) does the rest.

A service subclasses :class:`PredictionService` and provides:

* ``name`` (the design.md name, e.g. ``"transformer-temperature"``), ``title``, ``description``;
* ``Measurement``: the pydantic schema of one measurement (subclass :class:`MeasurementBase`,
  units in the field descriptions); ``Prediction``: the schema of one prediction item (documented
  in the OpenAPI contract);
* ``target``: the observed quantity clients send back through ``POST /v1/feedback``;
* :meth:`predict`: measurements of one asset -> scored predictions (synchronous; the runtime runs it
  off the event loop);
* :meth:`train` and :meth:`evaluate` for the ``vigie`` command;
* :meth:`replay_requests`: a CSV of the training-file format as predict requests, for
  ``vigie replay`` (a client replaying real measurements through the gateway).

HTTP, auth, metrics, level events, idempotency, storage and model loading belong to the runtime.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vigie.contract.errors import ConfigError
from vigie.contract.levels import Level
from vigie.io.asset_state import AssetStateStore
from vigie.io.prediction_log import ForecastPoint, MatchResult
from vigie.models.store import LoadedModel
from vigie.settings import VigieSettings

Progress = Callable[[str], None]


class StrictModel(BaseModel):
    """Unknown fields, NaN and Infinity are client errors, not values."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MeasurementBase(StrictModel):
    timestamp: AwareDatetime = Field(
        description="time of the measurement, RFC 3339 with a UTC offset, e.g. 2018-03-01T10:00:00Z"
    )


@dataclass(frozen=True)
class Target:
    """The observed quantity a service predicts (what feedback reports)."""

    name: str
    unit: str
    description: str = ""
    allowed: frozenset[float] | None = None  # e.g. {0, 1} for an observed outcome
    bounds: tuple[float, float] | None = None  # inclusive physical range of an observed value

    def problem(self, value: float) -> str | None:
        """Why ``value`` cannot be an observation of this target, or ``None``."""
        if self.allowed is not None and value not in self.allowed:
            return f"must be one of {sorted(self.allowed)}"
        if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
            return f"must be within [{self.bounds[0]}, {self.bounds[1]}] {self.unit}"
        return None


@dataclass(frozen=True)
class LevelDetail:
    """Why a prediction has its level; becomes the level event's value/threshold/message."""

    value: float | None
    unit: str | None
    threshold: float | None
    message: str


@dataclass
class Scored:
    """One prediction item as the service computed it."""

    timestamp: datetime
    level: Level
    body: dict[str, Any]  # JSON-ready prediction item (timestamp and level are added)
    detail: LevelDetail
    measurement: dict[str, Any] = field(default_factory=dict)  # what is logged with it
    points: list[ForecastPoint] = field(default_factory=list)


@dataclass(frozen=True)
class BatchSummary:
    """What a whole request says, beyond its items (e.g. a significance over a batch of events).

    ``body`` goes into the response as ``summary``; ``detail`` (with ``timestamp``) describes the
    level event instead of the worst item. Item levels still decide the response level, so a
    service whose level belongs to the batch gives its items that level."""

    body: dict[str, Any]
    detail: LevelDetail | None = None
    timestamp: datetime | None = None


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


@dataclass
class TrainedModel:
    model: Any
    card: dict[str, Any]  # card fields the service knows (see vigie.models.store.ModelCard)


M = TypeVar("M", bound=MeasurementBase)


class PredictionService(ABC, Generic[M]):
    """Base class of the five prediction services."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Measurement: ClassVar[type[MeasurementBase]]
    Prediction: ClassVar[type[BaseModel]]
    target: ClassVar[Target]
    replay_batch: ClassVar[int] = 100  # default new rows per replay request (``vigie replay``)
    #: Set when :meth:`predict` waits on I/O (Redis, a database): it then always runs on the
    #: model thread, never inline on the event loop (see :class:`vigie.serve.executor.ModelCalls`).
    predict_does_io: ClassVar[bool] = False

    def __init__(self, settings: VigieSettings) -> None:
        self.settings = settings
        self.asset_config: dict[str, Any] = load_asset_config(settings, self.name)
        self.loaded: LoadedModel | None = None
        # Per-asset state shared by all workers (set by the runtime when the app starts).
        self.state: AssetStateStore | None = None

    def bind(self, loaded: LoadedModel) -> None:
        """Attach a verified model; override to precompute what every request would redo.

        The bound model is :meth:`LoadedModel.serving`: its compiled parts (ONNX Runtime, see
        :mod:`vigie.models.compiled`) stand in for the joblib estimators they were built from."""
        self.loaded = loaded.serving()

    @property
    def model(self) -> LoadedModel:
        if self.loaded is None:
            raise RuntimeError("no model bound")
        return self.loaded

    @abstractmethod
    def predict(self, asset_id: str, measurements: Sequence[M]) -> list[Scored]:
        """Score one asset's measurements. Raise ``Unprocessable`` for domain errors."""

    def predict_batch(
        self, calls: Sequence[tuple[str, Sequence[M]]]
    ) -> list[list[Scored] | Exception]:
        """Several :meth:`predict` calls at once (micro-batching, ``VIGIE_MICRO_BATCH_WINDOW_US``):
        one result per call, in order, or the exception that call raised (its own 422). This
        default makes the calls one by one; override it to score all their rows with one model
        call, which is what micro-batching is for."""
        out: list[list[Scored] | Exception] = []
        for asset_id, measurements in calls:
            try:
                out.append(self.predict(asset_id, measurements))
            except Exception as exc:
                out.append(exc)
        return out

    def learn(self, asset_id: str, matches: list[MatchResult]) -> None:
        """Called after observed values were stored (``POST /v1/feedback``), with what each was
        matched to; override to learn online (e.g. recalibrate). Runs off the event loop."""

    def resources(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """Read-only results of the model in service, each served at ``GET /v1/<name>`` with the
        predict scope (e.g. ``{"clusters": self.clusters}``). Names are fixed by the class."""
        return {}

    def summarize(self, asset_id: str, scored: list[Scored]) -> BatchSummary | None:
        """Optional batch-level result (see :class:`BatchSummary`); none by default."""
        return None

    @abstractmethod
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        """Train from the data directory; return the model and its card fields."""

    @abstractmethod
    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """Score ``model`` on a CSV shaped like the training files; metric keys per design.md."""

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """The predict requests an integration would send for a CSV shaped like the training
        file (the one :meth:`evaluate` reads), in time order, ``batch`` new rows each (see
        :func:`replay_windows` for services that need history). ``asset`` chooses or overrides
        the asset id (the service documents its default). Raise ``ValueError`` for an unusable
        CSV. Services that cannot replay keep this default."""
        raise NotImplementedError(f"{self.name}: replay not supported")


def load_asset_config(settings: VigieSettings, service: str) -> dict[str, Any]:
    """Per-asset settings of ``service`` from ``VIGIE_ASSET_CONFIG``: ``{service: {asset: {}}}``."""
    if settings.asset_config is None:
        return {}
    try:
        config = json.loads(settings.asset_config.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"VIGIE_ASSET_CONFIG {settings.asset_config}: {exc}") from exc
    section = config.get(service, {})
    if not isinstance(section, dict):
        raise ConfigError(f"VIGIE_ASSET_CONFIG: '{service}' must map asset ids to settings")
    return section
