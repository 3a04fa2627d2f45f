"""``GET /v1/<name>``: read-only results of the model in service that a service declares
(:meth:`~vigie.contract.service.PredictionService.resources`, e.g. ``/v1/clusters``)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from vigie.auth.authenticator import Authenticator
from vigie.auth.verify import Principal
from vigie.contract.errors import error_responses
from vigie.contract.service import PredictionService
from vigie.serve.deps import RuntimeDep


def resources_router(
    service: PredictionService[Any, Any], scope: str, auth: Authenticator
) -> APIRouter:
    router = APIRouter(tags=["model"])
    for name, produce in service.resources().items():
        router.add_api_route(
            f"/v1/{name}",
            _reader(produce, scope, auth),
            methods=["GET"],
            summary=f"{name} of the model in service",
            responses=error_responses(401, 403, 503),
        )
    return router


def _reader(
    produce: Callable[[], dict[str, Any]], scope: str, auth: Authenticator
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def read_resource(
        runtime: RuntimeDep, _principal: Annotated[Principal, Depends(auth.requires(scope))]
    ) -> dict[str, Any]:
        runtime.model.current()
        return await run_in_threadpool(produce)

    return read_resource
