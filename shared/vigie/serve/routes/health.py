"""``GET /healthz`` (process alive) and ``GET /readyz`` (model loaded and verified)."""

from fastapi import APIRouter

from vigie.contract.errors import error_responses
from vigie.serve.deps import RuntimeDep
from vigie.serve.schemas import Health, Ready


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Process alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get("/readyz", summary="Model loaded and verified", responses=error_responses(503))
    async def readyz(runtime: RuntimeDep) -> Ready:
        loaded = runtime.model.current()
        return Ready(status="ready", service=runtime.service.name, model_version=loaded.version)

    return router
