"""``POST /v1/predict``, as the OpenAPI document shows it. The requests themselves are served
by :class:`~vigie.serve.asgi.HotRoute` and the app's :class:`~vigie.serve.predictor.Predictor`
(no dependency injection, the body validated from its bytes in one pass)."""

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from vigie.contract.errors import ServiceUnavailable, error_responses

if TYPE_CHECKING:
    from vigie.serve.predictor import Predictor

PATH = "/v1/predict"


def add_predict_route(app: FastAPI, title: str, response_model: type[BaseModel]) -> APIRoute:
    """Declare ``POST /v1/predict`` on ``app``; returns the route (what metrics label by)."""

    async def predict(request: Request) -> Response:
        return await predictor_of(request.app).handle(request)

    app.add_api_route(
        PATH,
        predict,
        methods=["POST"],
        tags=["predict"],
        summary=f"Predict for one asset: {title}",
        responses={
            200: {"model": response_model, "description": "one prediction per measurement"},
            **error_responses(400, 401, 403, 409, 413, 422, 503),
        },
        openapi_extra={"security": [{"bearer": []}]},
    )
    route = app.router.routes[-1]
    assert isinstance(route, APIRoute) and route.path == PATH
    return route


def predictor_of(app: Any) -> "Predictor":
    """The app's predictor, built in its lifespan; a 503 before it is."""
    predictor: Predictor | None = getattr(app.state, "predictor", None)
    if predictor is None:
        raise ServiceUnavailable("starting: the runtime is not built yet")
    return predictor
