"""The per-app dependencies of a prediction service, built whole in the app's lifespan.

:func:`open_runtime` connects Redis, the outbox, the prediction log, the model thread and loads
the model; the routes and the :class:`~vigie.serve.predictor.Predictor` receive the finished
:class:`Runtime` and never see a half-built one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from vigie.contract.errors import ModelUnavailable
from vigie.contract.service import PredictionService
from vigie.io.asset_state import AssetStateStore
from vigie.io.feedback import FeedbackStore
from vigie.io.idempotency import IdempotencyStore
from vigie.io.level_publisher import LevelPublisher
from vigie.io.outbox import Spool, spool_path
from vigie.io.prediction_log import PredictionLog, make_engine
from vigie.io.redis import clients
from vigie.models.store import LoadedModel, ModelLoadError, ModelStore
from vigie.obs.metrics import ServiceMetrics
from vigie.serve.executor import CallThread, MicroBatcher, ModelCalls
from vigie.serve.scoring import score_calls
from vigie.serve.worker import settle_interpreter
from vigie.settings import VigieSettings

log = logging.getLogger(__name__)


class ModelSlot:
    """The model in service, or why there is none (readyz answers 503 with that reason)."""

    def __init__(
        self, service: PredictionService[Any, Any], store: ModelStore, metrics: ServiceMetrics
    ) -> None:
        self.service = service
        self.store = store
        self.metrics = metrics
        self.error: str | None = "model not loaded yet"

    def current(self) -> LoadedModel:
        loaded = self.service.loaded
        if self.error is not None or loaded is None:
            raise ModelUnavailable(f"{self.service.name}: {self.error}")
        return loaded

    def load(self) -> None:
        name = self.service.name
        try:
            loaded = self.store.load_current(name, lean=True)
            self.service.bind(loaded)
        except Exception as exc:
            # A verified artifact the service cannot use (or a bug in bind) must leave the
            # service unready with the reason, not kill every worker in a restart loop.
            self.error = str(exc)
            self.metrics.model_ready.labels(name).set(0)
            log.error("model for %s NOT loaded, readyz answers 503: %s", name, exc,
                      exc_info=not isinstance(exc, ModelLoadError))  # fmt: skip
            return
        self.error = None
        card = loaded.card
        self.metrics.model_info.labels(name, card.version, card.artifact.sha256).set(1)
        self.metrics.model_ready.labels(name).set(1)
        log.info(
            "model %s/%s loaded (sha256 %s verified)", name, card.version, card.artifact.sha256
        )


@dataclass(frozen=True)
class Runtime:
    """Everything a request of a prediction service may use; all of it live."""

    settings: VigieSettings
    service: PredictionService[Any, Any]
    metrics: ServiceMetrics
    model: ModelSlot
    publisher: LevelPublisher
    idempotency: IdempotencyStore
    prediction_log: PredictionLog
    feedback: FeedbackStore
    model_calls: ModelCalls
    #: small calls scored together (``VIGIE_MICRO_BATCH_WINDOW_US``); None when off
    micro_batcher: MicroBatcher | None


@asynccontextmanager
async def open_runtime(
    service: PredictionService[Any, Any], settings: VigieSettings, metrics: ServiceMetrics
) -> AsyncIterator[Runtime]:
    """Connect everything, load the model, yield the runtime; close it all on the way out."""
    name = service.name
    redis_async, redis_sync = clients(settings.redis_url, settings.redis_timeout_s)
    spool = Spool(spool_path(settings, name))
    publisher = LevelPublisher(
        name,
        redis_async=redis_async,
        redis_sync=redis_sync,
        spool=spool,
        metrics=metrics,
        stream=settings.levels_stream,
        stream_maxlen=settings.levels_stream_maxlen,
        flush_interval_s=settings.outbox_flush_interval_s,
    )
    service.state = AssetStateStore(redis_sync, name)
    prediction_log = PredictionLog(
        make_engine(settings.database_url_for(name)),
        name,
        metrics,
        flush_interval_s=settings.prediction_log_flush_s,
        batch_size=settings.prediction_log_batch,
    )
    thread = CallThread()
    runtime = Runtime(
        settings=settings,
        service=service,
        metrics=metrics,
        model=ModelSlot(service, ModelStore(settings.models_dir), metrics),
        publisher=publisher,
        idempotency=IdempotencyStore(name, redis_async, spool, settings.idempotency_ttl_s),
        prediction_log=prediction_log,
        feedback=FeedbackStore(
            prediction_log.engine, name, metrics, flush_predictions=prediction_log.flush
        ),
        model_calls=ModelCalls(
            thread,
            budget_s=settings.inline_predict_budget_us / 1e6,
            max_inline_rows=settings.inline_predict_max_rows,
            inline=not service.predict_does_io,
        ),
        micro_batcher=_micro_batcher(service, settings, metrics, thread),
    )
    prediction_log.start()
    publisher.start()
    thread.start()
    await run_in_threadpool(runtime.model.load)
    settle_interpreter()
    try:
        yield runtime
    finally:
        await run_in_threadpool(thread.stop)
        await publisher.stop()
        await run_in_threadpool(prediction_log.close)
        await redis_async.aclose()
        redis_sync.close()


def _micro_batcher(
    service: PredictionService[Any, Any],
    settings: VigieSettings,
    metrics: ServiceMetrics,
    thread: CallThread,
) -> MicroBatcher | None:
    if settings.micro_batch_window_us <= 0:
        return None
    return MicroBatcher(
        thread,
        lambda calls: score_calls(service, [batch for (batch,) in calls]),
        window_s=settings.micro_batch_window_us / 1e6,
        max_rows=settings.micro_batch_max_rows,
        observe=metrics.micro_batch_calls.labels(service.name).observe,
    )
