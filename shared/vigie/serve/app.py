"""The app factory of a prediction service: wiring only.

:func:`create_app` turns a :class:`~vigie.contract.service.PredictionService` into a FastAPI app
from explicit dependencies; nothing happens at import time and nothing connects before the
lifespan, which builds the :class:`~vigie.serve.runtime.Runtime` whole. :func:`app_for` is the
gunicorn entry point::

    gunicorn 'vigie.serve.app:app_for("transformer-temperature")' -k uvicorn_worker.UvicornWorker
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from vigie.auth.authenticator import Authenticator
from vigie.contract.errors import install_error_handlers
from vigie.contract.service import PredictionService
from vigie.obs.logs import configure_logging, install_request_context
from vigie.obs.metrics import install_metrics
from vigie.ops.registry import load
from vigie.serve.asgi import BodyLimit, HotRoute
from vigie.serve.http import JSONResponse
from vigie.serve.openapi import document_body
from vigie.serve.predictor import Predictor
from vigie.serve.routes import feedback, health, model, predict, predictions, resources
from vigie.serve.runtime import open_runtime
from vigie.serve.schemas import predict_models
from vigie.settings import VigieSettings


def create_app(
    service: PredictionService[Any, Any],
    settings: VigieSettings,
    *,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the HTTP service for ``service``; fails fast on bad configuration."""
    name = service.name
    auth = authenticator or Authenticator.from_settings(settings)
    predict_scope, feedback_scope = f"predict:{name}", f"feedback:{name}"
    request_model, response_model = predict_models(service, settings.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(service, settings, metrics) as runtime:
            app.state.runtime = runtime
            app.state.predictor = Predictor(runtime, auth, request_model)
            yield

    app = FastAPI(
        title=f"Vigie {service.title}",
        description=service.description,
        version="1",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    metrics = install_metrics(app, name)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    install_request_context(app, settings)

    predict_route = predict.add_predict_route(app, service.title, response_model)
    app.include_router(feedback.feedback_router(feedback_scope, auth, service.target,
                                                settings.max_batch))  # fmt: skip
    app.include_router(model.model_router(predict_scope, auth))
    app.include_router(predictions.predictions_router(predict_scope, auth))
    app.include_router(resources.resources_router(service, predict_scope, auth))
    app.include_router(health.health_router())
    document_body(app, predict.PATH, request_model)
    app.user_middleware.append(  # the innermost of the middleware (see HotRoute)
        Middleware(
            HotRoute,
            path=predict.PATH,
            endpoint_of=lambda app: predict.predictor_of(app).handle,
            route=predict_route,
        )
    )
    return app


def app_for(service_name: str, settings: VigieSettings | None = None) -> FastAPI:
    """Gunicorn/uvicorn factory: the app of a registered service, configured from the env."""
    settings = settings or VigieSettings()
    configure_logging(settings, service_name)
    return create_app(load().service_class(service_name)(settings), settings)
