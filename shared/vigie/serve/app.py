"""The runtime: turns a :class:`~vigie.contract.service.PredictionService` into a FastAPI app.

It owns the endpoints of design.md section 2, auth, metrics, level events, idempotency, the
prediction log and model loading. Everything is built in :func:`create_app` from explicit
dependencies; nothing happens at import time. :func:`app_for` is the gunicorn entry point::

    gunicorn 'vigie.serve.app:app_for("transformer-temperature")' -k uvicorn_worker.UvicornWorker
"""

import ctypes
import gc
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.middleware import Middleware
from starlette.responses import Response

from vigie.auth.verify import Authenticator, Principal
from vigie.contract.errors import (
    ModelUnavailable,
    PayloadTooLarge,
    Unprocessable,
    client_error_response,
    field_error,
    install_error_handlers,
)
from vigie.contract.ids import hex_run, new_hex
from vigie.contract.level_event import LevelEvent
from vigie.contract.levels import Level
from vigie.contract.service import BatchSummary, PredictionService, Scored, StrictModel
from vigie.io.asset_state import AssetStateStore
from vigie.io.idempotency import IdempotencyStore, StoredResponse
from vigie.io.level_publisher import LevelPublisher
from vigie.io.outbox import Spool, spool_path
from vigie.io.prediction_log import Observation, PredictionLog, PredictionRecord, make_engine
from vigie.models.store import LoadedModel, ModelLoadError, ModelStore
from vigie.obs.logs import configure_logging, current_request_id, install_request_context
from vigie.obs.metrics import ServiceMetrics, install_metrics
from vigie.serve.executor import CallThread, MicroBatcher, ModelCalls
from vigie.serve.http import JSONResponse
from vigie.settings import VigieSettings

log = logging.getLogger(__name__)

ASSET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
AssetId = Annotated[
    str,
    Field(pattern=ASSET_ID_PATTERN, description="asset identifier (1-64 of A-Z a-z 0-9 _ . : -)"),
]


@dataclass
class Runtime:
    """The per-app dependencies, created in the lifespan."""

    settings: VigieSettings
    service: PredictionService[Any]
    metrics: ServiceMetrics
    store: ModelStore
    model_error: str | None = "model not loaded yet"
    publisher: LevelPublisher | None = None
    idempotency: IdempotencyStore | None = None
    prediction_log: PredictionLog | None = None
    model_thread: CallThread = field(default_factory=CallThread)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def loaded_model(self) -> LoadedModel:
        if self.model_error is not None or self.service.loaded is None:
            raise ModelUnavailable(f"{self.service.name}: {self.model_error}")
        return self.service.loaded

    def load_model(self) -> None:
        name = self.service.name
        try:
            loaded = self.store.load_current(name, lean=True)
            self.service.bind(loaded)
        except Exception as exc:
            # A verified artifact the service cannot use (or a bug in bind) must leave the
            # service unready with the reason, not kill every worker in a restart loop.
            self.model_error = str(exc)
            self.metrics.model_ready.labels(name).set(0)
            log.error("model for %s NOT loaded, readyz answers 503: %s", name, exc,
                      exc_info=not isinstance(exc, ModelLoadError))  # fmt: skip
            return
        self.model_error = None
        card = loaded.card
        self.metrics.model_info.labels(name, card.version, card.artifact.sha256).set(1)
        self.metrics.model_ready.labels(name).set(1)
        log.info(
            "model %s/%s loaded (sha256 %s verified)", name, card.version, card.artifact.sha256
        )


class ObservationIn(StrictModel):
    timestamp: AwareDatetime = Field(description="time the observed value is about")
    value: float = Field(description="observed value, in the unit of the service's target")
    target: str | None = Field(default=None, description="observed quantity (default: the target)")


class FeedbackRequest(StrictModel):
    asset_id: AssetId
    observations: list[ObservationIn] = Field(min_length=1)


def _request_models(service: PredictionService[Any], max_batch: int) -> tuple[type, type]:
    measurement = service.Measurement
    # A type built at run time: Any for the checker, a real annotation for pydantic.
    batch: Any = Annotated[list[measurement], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    predict_request = create_model(
        f"{measurement.__name__}Batch",
        __base__=StrictModel,
        asset_id=(AssetId, ...),
        measurements=(batch, ...),
    )

    prediction_item = service.Prediction
    predict_response = create_model(
        f"{prediction_item.__name__}Response",
        __config__=ConfigDict(extra="allow"),
        service=(str, ...),
        model_version=(str, ...),
        asset_id=(str, ...),
        request_id=(str, ...),
        level=(Level, ...),
        predictions=(list[prediction_item], ...),  # type: ignore[valid-type]
    )
    return predict_request, predict_response


def _parse_body(model: type[BaseModel], body: bytes) -> Any:
    """``body`` validated straight from its JSON bytes (one pass, in pydantic's core), errors
    reported as FastAPI reports a body's: 422 (400 for malformed JSON) naming each field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _document_body(app: FastAPI, path: str, model: type[BaseModel]) -> None:
    """Declare ``model`` as the JSON body of ``POST path`` in the OpenAPI document, for a route
    that reads its body itself (see :func:`_parse_body`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = app.openapi_schema
        if spec is None:
            spec = build()  # and cached by FastAPI, with what we add below
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            spec["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}},
            }
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _level_event(
    runtime: Runtime,
    asset_id: str,
    scored: list[Scored],
    summary: BatchSummary | None,
    version: str,
    request_id: str,
) -> LevelEvent:
    # The event describes the worst prediction of the call (the latest among equals), so its
    # level is the response's level; a batch summary, when given, explains it instead.
    worst = max(scored, key=lambda s: (s.level.rank, s.timestamp))
    d = worst.detail
    observed_at = worst.timestamp
    if summary is not None and summary.detail is not None:
        d = summary.detail
        observed_at = summary.timestamp or observed_at
    return LevelEvent.new(
        service=runtime.service.name,
        asset_id=asset_id,
        level=worst.level,
        observed_at=observed_at,
        value=d.value,
        unit=d.unit,
        threshold=d.threshold,
        model_version=version,
        message=d.message,
        request_id=request_id,
    )


def _settle_interpreter() -> None:
    """Tail latency: what a worker loaded at start-up (modules, model, sessions) is frozen out of
    the garbage collector's full passes, which otherwise walk it all every few thousand
    requests; and a thread holding the GIL (the prediction-log writer, the model thread) yields
    it to the event loop after 1 ms instead of 5."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)
    _release_freed_memory()


def _release_freed_memory() -> None:
    """Hand back to the system what building the ONNX Runtime sessions freed: glibc keeps it in
    the heap otherwise (measured: gamma-classifier's worker 231 -> 159 MB, energy-anomaly's 414
    -> 212 MB). A no-op elsewhere than glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _BodyLimit:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = JSONResponse(
                    PayloadTooLarge(f"request body over {limit} bytes").body(), status_code=413
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


class _HotRoute:
    """Pure ASGI: ``POST path`` goes straight to ``endpoint``, past Starlette's routing, FastAPI's
    dependency injection and the exception middleware, which together spent as much CPU on the
    event loop as everything else a prediction does. Installed inside the request context,
    metrics and body limit, which still apply; client errors get the one error handler, anything
    else reaches the 500 handler as from any route. Other requests pass through."""

    def __init__(
        self,
        app: Any,
        *,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        route: Any,
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint
        self.route = route

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # what the metrics label requests by
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            error = await client_error_response(request, exc)
            if error is None:
                raise
            response = error
        await response(scope, receive, send)


def create_app(
    service: PredictionService[Any],
    settings: VigieSettings,
    *,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the HTTP service for ``service``; fails fast on bad configuration."""
    name = service.name
    auth = authenticator or Authenticator.from_settings(settings)
    predict_scope, feedback_scope = f"predict:{name}", f"feedback:{name}"
    PredictRequest, PredictResponse = _request_models(service, settings.max_batch)  # noqa: N806

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt: Runtime = app.state.runtime
        redis_kw: dict[str, Any] = {
            "socket_timeout": settings.redis_timeout_s,
            "socket_connect_timeout": settings.redis_timeout_s,
        }
        redis_async = aioredis.Redis.from_url(settings.redis_url, **redis_kw)
        redis_sync = redis.Redis.from_url(settings.redis_url, **redis_kw)
        spool = Spool(spool_path(settings, name))
        rt.publisher = LevelPublisher(
            name,
            redis_async=redis_async,
            redis_sync=redis_sync,
            spool=spool,
            metrics=rt.metrics,
            stream=settings.levels_stream,
            stream_maxlen=settings.levels_stream_maxlen,
            flush_interval_s=settings.outbox_flush_interval_s,
        )
        rt.idempotency = IdempotencyStore(name, redis_async, spool, settings.idempotency_ttl_s)
        service.state = AssetStateStore(redis_sync, name)
        rt.prediction_log = PredictionLog(
            make_engine(settings.database_url_for(name)),
            name,
            rt.metrics,
            flush_interval_s=settings.prediction_log_flush_s,
            batch_size=settings.prediction_log_batch,
        )
        rt.prediction_log.start()
        rt.publisher.start()
        rt.model_thread.start()
        await run_in_threadpool(rt.load_model)
        _settle_interpreter()
        try:
            yield
        finally:
            await run_in_threadpool(rt.model_thread.stop)
            await rt.publisher.stop()
            await run_in_threadpool(rt.prediction_log.close)
            await redis_async.aclose()
            redis_sync.close()

    app = FastAPI(
        title=f"Vigie {service.title}",
        description=service.description,
        version="1",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    metrics = install_metrics(app, name)
    runtime = Runtime(settings, service, metrics, ModelStore(settings.models_dir))
    app.state.runtime = runtime
    model_calls = ModelCalls(
        runtime.model_thread,
        budget_s=settings.inline_predict_budget_us / 1e6,
        max_inline_rows=settings.inline_predict_max_rows,
        inline=not service.predict_does_io,
    )
    app.state.model_calls = model_calls
    batcher = None
    if settings.micro_batch_window_us > 0:
        batcher = MicroBatcher(
            runtime.model_thread,
            service.predict_batch,
            window_s=settings.micro_batch_window_us / 1e6,
            max_rows=settings.micro_batch_max_rows,
            observe=metrics.micro_batch_calls.labels(name).observe,
        )
    app.state.micro_batcher = batcher
    _document_body(app, "/v1/predict", PredictRequest)
    install_error_handlers(app)
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    install_request_context(app, settings)

    # The hot route: no dependency injection, the body validated from its bytes in one pass;
    # the OpenAPI document still shows its body schema and its bearer security.
    @app.post(
        "/v1/predict",
        summary=f"Predict for one asset: {service.title}",
        responses={200: {"model": PredictResponse}},
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def predict(request: Request) -> Response:
        principal = await auth.authorize(request, predict_scope)
        raw = await request.body()
        body = _parse_body(PredictRequest, raw)
        loaded = runtime.loaded_model()
        assert runtime.idempotency and runtime.publisher and runtime.prediction_log
        # RequestContext's id: the one of the access line and of the X-Request-ID it answers.
        request_id = current_request_id() or new_hex()
        claim = None
        idem_key = request.headers.get("idempotency-key")
        if idem_key is not None:
            outcome = await runtime.idempotency.begin(principal.sub, idem_key, raw)
            if isinstance(outcome, StoredResponse):
                metrics.idempotent_replays.labels(name).inc()
                return Response(
                    outcome.body,
                    status_code=outcome.status,
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
            claim = outcome
        try:
            payload = await _predict(body, loaded, request_id)
        except BaseException:
            if claim is not None:
                await runtime.idempotency.abandon(claim)
            raise
        if claim is not None:
            await runtime.idempotency.complete(claim, 200, payload)
        return Response(payload, media_type="application/json")

    async def _predict(body: Any, loaded: LoadedModel, request_id: str) -> bytes:
        assert runtime.publisher and runtime.prediction_log
        asset_id: str = body.asset_id
        # Before anything is computed or published: a 503 here means nothing happened.
        await runtime.prediction_log.room(
            settings.prediction_log_max_backlog, settings.prediction_log_wait_s
        )
        measurements = body.measurements
        rows = len(measurements)
        if batcher is not None and rows < batcher.max_rows:
            scored = await batcher.run(rows, asset_id, measurements)
        else:
            scored = await model_calls.run(rows, service.predict, asset_id, measurements)
        version = loaded.version
        summary = service.summarize(asset_id, scored)
        items = [{"timestamp": s.timestamp, "level": s.level, **s.body} for s in scored]
        level = Level.highest(s.level for s in scored)
        response: dict[str, Any] = {
            "service": name,
            "model_version": version,
            "asset_id": asset_id,
            "request_id": request_id,
            "level": level,
            "predictions": items,
        }
        if summary is not None:
            response["summary"] = summary.body
        await runtime.publisher.publish(
            _level_event(runtime, asset_id, scored, summary, version, request_id)
        )
        row_ids = hex_run(len(scored))
        runtime.prediction_log.submit(
            [
                PredictionRecord(
                    prediction_id=row_id,
                    asset_id=asset_id,
                    timestamp=s.timestamp,
                    request_id=request_id,
                    model_version=version,
                    level=s.level,
                    measurement=s.measurement,
                    prediction=item,
                    points=s.points,
                )
                for row_id, s, item in zip(row_ids, scored, items, strict=True)
            ]
        )
        for lvl, count in Counter(s.level for s in scored).items():
            metrics.predictions.labels(name, lvl).inc(count)
        return orjson.dumps(response, option=orjson.OPT_UTC_Z)

    app.user_middleware.append(  # the innermost of the middleware (see _HotRoute)
        Middleware(
            _HotRoute,
            path="/v1/predict",
            endpoint=predict,
            route=next(r for r in app.routes if getattr(r, "path", None) == "/v1/predict"),
        )
    )

    @app.post("/v1/feedback", summary="Observed values for earlier predictions")
    async def feedback(
        body: FeedbackRequest,
        principal: Annotated[Principal, Depends(auth.requires(feedback_scope))],
    ) -> dict[str, Any]:
        runtime.loaded_model()
        assert runtime.prediction_log
        if len(body.observations) > settings.max_batch:
            raise Unprocessable(
                f"observations: at most {settings.max_batch} per request",
                details=[field_error(("body", "observations"), "too many items", "too_long")],
            )
        known_targets = {service.target.name}
        for i, obs in enumerate(body.observations):
            if obs.target is not None and obs.target not in known_targets:
                raise Unprocessable(
                    f"observations.{i}.target: unknown target {obs.target!r}",
                    details=[
                        field_error(
                            ("body", "observations", i, "target"),
                            f"must be one of {sorted(known_targets)}",
                            "value_error",
                        )
                    ],
                )
            problem = service.target.problem(obs.value)
            if problem is not None:
                raise Unprocessable(
                    f"observations.{i}.value: {problem}",
                    details=[
                        field_error(("body", "observations", i, "value"), problem, "value_error")
                    ],
                )
        observations = [
            Observation(o.target or service.target.name, o.timestamp, o.value)
            for o in body.observations
        ]
        log_ = runtime.prediction_log
        results = await run_in_threadpool(
            log_.record_observations, body.asset_id, observations, principal.sub
        )
        try:
            await run_in_threadpool(service.learn, body.asset_id, results)
        except Exception:
            # The observations are stored; learning from them is best effort (logged).
            log.exception("%s could not learn from feedback for %s", name, body.asset_id)
        live = await run_in_threadpool(log_.live_mae, body.asset_id)
        return {
            "asset_id": body.asset_id,
            "received": len(results),
            "matched_forecasts": sum(r.matched for r in results),
            "observations": [
                {"timestamp": r.timestamp, "target": r.target, "matched": r.matched}
                for r in results
            ],
            "live_mae": live,
        }

    @app.get("/v1/model", summary="The model card of the model in service")
    async def model_card(
        _principal: Annotated[Principal, Depends(auth.requires(predict_scope))],
    ) -> dict[str, Any]:
        return runtime.loaded_model().card.model_dump()

    @app.get("/v1/predictions", summary="Stored predictions of one asset over a time range")
    async def predictions(
        _principal: Annotated[Principal, Depends(auth.requires(predict_scope))],
        asset_id: Annotated[str, Query(pattern=ASSET_ID_PATTERN)],
        start: Annotated[AwareDatetime | None, Query(description="inclusive")] = None,
        end: Annotated[AwareDatetime | None, Query(description="exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[int, Query(ge=0, description="next_cursor of the previous page")] = 0,
    ) -> dict[str, Any]:
        assert runtime.prediction_log
        rows = await run_in_threadpool(
            runtime.prediction_log.page, asset_id, start, end, after_seq=cursor, limit=limit
        )
        return {
            "asset_id": asset_id,
            "items": rows,
            "next_cursor": rows[-1]["cursor"] if len(rows) == limit else None,
        }

    for resource, produce in service.resources().items():

        def make(produce: Callable[[], dict[str, Any]]) -> Callable[..., Awaitable[dict[str, Any]]]:
            async def read_resource(
                _principal: Annotated[Principal, Depends(auth.requires(predict_scope))],
            ) -> dict[str, Any]:
                runtime.loaded_model()
                return await run_in_threadpool(produce)

            return read_resource

        app.get(f"/v1/{resource}", summary=f"{resource} of the model in service")(make(produce))

    @app.get("/healthz", summary="Process alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Model loaded and verified")
    async def readyz() -> dict[str, Any]:
        loaded = runtime.loaded_model()
        return {"status": "ready", "service": name, "model_version": loaded.version}

    return app


def app_for(service_name: str, settings: VigieSettings | None = None) -> FastAPI:
    """Gunicorn/uvicorn factory: the app of a registered service, configured from the env."""
    from vigie_services import load_service

    settings = settings or VigieSettings()
    configure_logging(settings, service_name)
    return create_app(load_service(service_name)(settings), settings)
