"""``GET /v1/model``: the card of the model in service."""

from typing import Annotated

from fastapi import APIRouter, Depends

from vigie.auth.authenticator import Authenticator
from vigie.auth.verify import Principal
from vigie.contract.errors import error_responses
from vigie.models.card import ModelCard
from vigie.serve.deps import RuntimeDep


def model_router(scope: str, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["model"])

    @router.get(
        "/v1/model",
        summary="The model card of the model in service",
        responses=error_responses(401, 403, 503),
    )
    async def model_card(
        runtime: RuntimeDep, _principal: Annotated[Principal, Depends(auth.requires(scope))]
    ) -> ModelCard:
        return runtime.model.current().card

    return router
