"""``GET /v1/predictions``: the stored predictions of one asset over a time range, paged."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from vigie.auth.authenticator import Authenticator
from vigie.auth.verify import Principal
from vigie.contract.errors import error_responses
from vigie.contract.service import Rfc3339
from vigie.serve.deps import RuntimeDep
from vigie.serve.schemas import ASSET_ID_PATTERN, PredictionsPage, StoredPrediction

# A cursor is a row sequence number: bounded like the database's 64-bit integers.
MAX_CURSOR = 2**63 - 1


def predictions_router(scope: str, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["predictions"])

    @router.get(
        "/v1/predictions",
        summary="Stored predictions of one asset over a time range",
        responses=error_responses(401, 403, 422, 503),
    )
    async def predictions(
        runtime: RuntimeDep,
        _principal: Annotated[Principal, Depends(auth.requires(scope))],
        asset_id: Annotated[str, Query(pattern=ASSET_ID_PATTERN)],
        start: Annotated[Rfc3339 | None, Query(description="inclusive")] = None,
        end: Annotated[Rfc3339 | None, Query(description="exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[
            int, Query(ge=0, le=MAX_CURSOR, description="next_cursor of the previous page")
        ] = 0,
    ) -> PredictionsPage:
        rows = await run_in_threadpool(
            runtime.prediction_log.page, asset_id, start, end, after_seq=cursor, limit=limit
        )
        return PredictionsPage(
            asset_id=asset_id,
            items=[StoredPrediction.model_validate(r) for r in rows],
            next_cursor=rows[-1]["cursor"] if len(rows) == limit else None,
        )

    return router
