"""What a prediction service declares; the runtime (:mod:`vigie.serve`) does the rest.

A service subclasses :class:`PredictionService` and provides:

* ``name`` (the design.md name, e.g. ``"transformer-temperature"``), ``title``, ``description``;
* ``Measurement``: the pydantic schema of one measurement (subclass :class:`MeasurementBase`,
  units in the field descriptions); ``Prediction``: the schema of one prediction item (documented
  in the OpenAPI contract);
* ``target``: the observed quantity clients send back through ``POST /v1/feedback``;
* optionally ``AssetSettings`` (one asset's settings in ``VIGIE_ASSET_CONFIG``, parsed once by
  the runtime into :attr:`PredictionService.assets`) and ``window`` (the runtime checks that a
  request's measurements are consecutive, see :class:`~vigie.contract.window.Window`);
* how rows are scored (:mod:`vigie.contract.batch`): :meth:`~PredictionService.infer`, the model
  call on a columnar batch, and :meth:`~PredictionService.present`, one call's levels and items
  from its outputs; :meth:`~PredictionService.check` for domain checks (a 422) beyond the
  schema;
* :meth:`~PredictionService.train` and :meth:`~PredictionService.evaluate` for the ``vigie``
  command, and :meth:`~PredictionService.replay_requests` for ``vigie replay``.

HTTP, auth, metrics, level events, idempotency, the prediction log (the measurements of each
prediction included), micro-batching and model loading belong to the runtime.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from vigie.contract.assets import AssetConfig
from vigie.contract.batch import Batch, Outputs, Scores
from vigie.contract.replay import ReplayRequest
from vigie.contract.window import Window
from vigie.io.asset_state import AssetStateStore
from vigie.io.feedback import MatchResult
from vigie.models.store import LoadedModel
from vigie.settings import VigieSettings

Progress = Callable[[str], None]


class StrictModel(BaseModel):
    """Unknown fields, NaN and Infinity are client errors, not values; and no coercion: ``true``
    is not a number, ``"1.5"`` is not one either (JSON numbers are, integers included).

    Strict validation of Python objects (FastAPI validates bodies after ``json.loads``) also
    refuses a string for a datetime or an enum: such fields say ``Field(strict=False)``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 string (or a datetime) is a time: not a number of seconds."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with a UTC offset, e.g. 2018-03-01T10:00:00Z")


#: An aware datetime given as RFC 3339 text (JSON) or a datetime (Python), nothing else.
Rfc3339 = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339)]


class MeasurementBase(StrictModel):
    timestamp: Rfc3339 = Field(
        description="time of the measurement, RFC 3339 with a UTC offset, e.g. "
        "2018-03-01T10:00:00Z",
    )


class NoAssetSettings(StrictModel):
    """A service without per-asset settings: any configured asset must be empty."""


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


@dataclass
class TrainedModel:
    model: Any
    card: dict[str, Any]  # card fields the service knows (see vigie.models.card.ModelCard)


M = TypeVar("M", bound=MeasurementBase)
A = TypeVar("A", bound=BaseModel)


class PredictionService(ABC, Generic[M, A]):
    """Base class of the prediction services."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Measurement: ClassVar[type[MeasurementBase]]
    Prediction: ClassVar[type[BaseModel]]
    target: ClassVar[Target]
    #: one asset's settings in ``VIGIE_ASSET_CONFIG`` (fields with defaults)
    AssetSettings: ClassVar[type[BaseModel]] = NoAssetSettings
    #: the consecutive-measurement rule of a request, checked before :meth:`check`
    window: ClassVar[Window | None] = None
    #: a row's outputs do not depend on the other rows nor on the asset: the runtime may then
    #: score the rows of several small calls with one :meth:`infer` (micro-batching)
    rows_independent: ClassVar[bool] = False
    #: :meth:`present` waits on I/O (Redis, a database): scoring then always runs on the model
    #: thread, never inline on the event loop (see :class:`vigie.serve.executor.ModelCalls`)
    predict_does_io: ClassVar[bool] = False
    replay_batch: ClassVar[int] = 100  # default new rows per replay request (``vigie replay``)

    def __init__(self, settings: VigieSettings) -> None:
        self.settings = settings
        self.assets: AssetConfig[A] = AssetConfig.load(
            self.AssetSettings,  # type: ignore[arg-type]
            self.name,
            settings.asset_config,
        )
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

    # -- scoring (runs off the event loop, or inline when measured cheap) -------------------
    def check(self, batch: Batch[M]) -> None:
        """Domain checks of one call beyond the schema and :attr:`window`; raise
        :class:`~vigie.contract.errors.Unprocessable` naming the field. None by default."""

    @abstractmethod
    def infer(self, batch: Batch[M]) -> Outputs:
        """The model call: arrays with one entry per row of ``batch``. With
        :attr:`rows_independent`, ``batch`` may hold the rows of several calls (its
        ``asset_id`` is then meaningless)."""

    @abstractmethod
    def present(self, batch: Batch[M], outputs: Outputs) -> Scores:
        """One call's levels and prediction items, from its rows' :meth:`infer` outputs."""

    # -- optional hooks ---------------------------------------------------------------------
    def learn(self, asset_id: str, matches: list[MatchResult]) -> None:
        """Called after observed values were stored (``POST /v1/feedback``), with what each was
        matched to; override to learn online (e.g. recalibrate). Runs off the event loop."""

    def resources(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """Read-only results of the model in service, each served at ``GET /v1/<name>`` with the
        predict scope (e.g. ``{"clusters": self.clusters}``). Names are fixed by the class."""
        return {}

    # -- the vigie command ------------------------------------------------------------------
    @abstractmethod
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        """Train from the data directory; return the model and its card fields (the runtime
        adds ``title`` and ``training_time_s``; :mod:`vigie.models.training` describes data
        files and compiles parts)."""

    @abstractmethod
    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """Score ``model`` on a CSV shaped like the training files; metric keys per design.md."""

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """The predict requests an integration would send for a CSV shaped like the training
        file (the one :meth:`evaluate` reads), in time order, ``batch`` new rows each (see
        :func:`vigie.contract.replay.replay_windows` for services that need history).
        ``asset`` chooses or overrides the asset id (the service documents its default). Raise
        ``ValueError`` for an unusable CSV. Services that cannot replay keep this default."""
        raise NotImplementedError(f"{self.name}: replay not supported")
