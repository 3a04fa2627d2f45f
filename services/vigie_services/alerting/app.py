"""The alerting service: one process that consumes level events, notifies, and serves the API.

It runs as a single gunicorn worker (``vigie serve alerting``): the consumer inside keeps each
asset's events in order, which several consumers of the group could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from vigie.auth.authenticator import Authenticator
from vigie.contract.errors import ServiceUnavailable, error_responses, install_error_handlers
from vigie.io.redis import REDIS_ERRORS
from vigie.obs.logs import install_request_context
from vigie.obs.metrics import install_metrics
from vigie_services.alerting.alert_events import AlertEventPublisher
from vigie_services.alerting.api import AlertingApi, routers
from vigie_services.alerting.api.responses import Health, Ready
from vigie_services.alerting.consumer import LevelConsumer
from vigie_services.alerting.db import make_engine, migrate
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.delivery import DeliveryWorker
from vigie_services.alerting.housekeeping import Housekeeper
from vigie_services.alerting.metrics import AlertingMetrics
from vigie_services.alerting.notifiers import build_notifiers
from vigie_services.alerting.notifiers.base import Notifier
from vigie_services.alerting.settings import AlertingSettings

log = logging.getLogger(__name__)
SERVICE = "alerting"


@dataclass
class Parts:
    """What the lifespan builds; the routes reach it through these fields."""

    sessions: sessionmaker[Session] | None = None
    redis: aioredis.Redis | None = None
    notifiers: dict[str, Notifier] = field(default_factory=dict)
    worker: DeliveryWorker | None = None
    publisher: AlertEventPublisher | None = None

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()
        if self.publisher is not None:
            self.publisher.wake()


def create_app(
    settings: AlertingSettings | None = None, *, authenticator: Authenticator | None = None
) -> FastAPI:
    settings = settings or AlertingSettings()
    auth = authenticator or Authenticator.from_settings(settings)
    parts = Parts()
    db_url = settings.database_url_for(SERVICE)
    engine = make_engine(db_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    parts.sessions = sessions
    db = DatabaseThread()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, db_url)
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=max(settings.redis_timeout_s, 2.0),  # > the 1 s XREADGROUP block
            socket_connect_timeout=settings.redis_timeout_s,
        )
        http = httpx.AsyncClient(timeout=settings.send_timeout_s)
        parts.redis = client
        parts.notifiers = build_notifiers(settings, http)
        parts.worker = DeliveryWorker(sessions, db, parts.notifiers, settings, metrics)
        parts.publisher = AlertEventPublisher(
            client, sessions, settings.alerts_stream, settings.alerts_channel,
            settings.levels_stream_maxlen, db,
        )  # fmt: skip
        consumer = LevelConsumer(
            client, sessions, settings, metrics,
            settings.consumer_name or socket.gethostname(), parts.wake, db,
        )  # fmt: skip
        housekeeper = Housekeeper(client, sessions, settings, metrics, parts.wake, db)
        runners: list[Any] = [consumer, parts.worker, parts.publisher, housekeeper]
        tasks = [asyncio.create_task(r.run(), name=type(r).__name__) for r in runners]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await parts.worker.stop()
            await http.aclose()
            await client.aclose()
            db.shutdown()
            engine.dispose()

    app = FastAPI(
        title="Vigie alerting",
        description=__doc__ or "",
        version="1",
        lifespan=lifespan,
        # No default_response_class: with FastAPI's own, every route's response model is both
        # its OpenAPI schema and its serializer (pydantic straight to JSON bytes). Errors keep
        # the envelope's renderer (vigie.contract.errors).
    )
    metrics = AlertingMetrics(install_metrics(app, SERVICE).registry)
    install_error_handlers(app)
    install_request_context(app, settings)
    api = AlertingApi(sessions, db, auth, lambda: parts.notifiers, settings.public_url, parts.wake)
    for router in routers(api):
        app.include_router(router)

    @app.get("/healthz", summary="Process alive", tags=["probes"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", summary="Database and Redis reachable", tags=["probes"],
             responses=error_responses(503))  # fmt: skip
    async def readyz() -> Ready:
        def db_ok() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await asyncio.to_thread(db_ok)
        except Exception as exc:
            # The type only, to the client: driver messages name hosts and users.
            log.warning("readyz: database unreachable: %s", exc)
            raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from None
        assert parts.redis is not None
        for attempt in (1, 2):
            try:
                await parts.redis.ping()
                break
            except REDIS_ERRORS as exc:
                # After Redis restarts, a pooled connection it closed fails once (and is
                # dropped); only a second failure, on a new connection, means unreachable.
                if attempt == 2:
                    raise ServiceUnavailable(f"redis unreachable: {exc}") from None
        return Ready(status="ready")

    return app
