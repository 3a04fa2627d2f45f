"""``POST /v1/feedback``: observed values for earlier predictions -> live skill."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from vigie.auth.authenticator import Authenticator
from vigie.auth.verify import Principal
from vigie.contract.errors import error_responses
from vigie.contract.service import Target
from vigie.io.feedback import Observation
from vigie.serve.deps import RuntimeDep
from vigie.serve.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    ObservationOut,
    feedback_model,
)

log = logging.getLogger(__name__)


def feedback_router(scope: str, auth: Authenticator, target: Target, max_batch: int) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    request_model = feedback_model(target, max_batch)

    async def feedback(
        body: FeedbackRequest,
        runtime: RuntimeDep,
        principal: Annotated[Principal, Depends(auth.requires(scope))],
    ) -> FeedbackResponse:
        runtime.model.current()
        observations = [
            Observation(o.target or target.name, o.timestamp, o.value) for o in body.observations
        ]
        store = runtime.feedback
        results = await run_in_threadpool(
            store.record_observations, body.asset_id, observations, principal.sub
        )
        try:
            await run_in_threadpool(runtime.service.learn, body.asset_id, results)
        except Exception:
            # The observations are stored; learning from them is best effort (logged).
            log.exception("%s could not learn from feedback for %s", runtime.service.name,
                          body.asset_id)  # fmt: skip
        live = await run_in_threadpool(store.live_mae, body.asset_id)
        return FeedbackResponse(
            asset_id=body.asset_id,
            received=len(results),
            matched_forecasts=sum(r.matched for r in results),
            observations=[
                ObservationOut(timestamp=r.timestamp, target=r.target, matched=r.matched)
                for r in results
            ],
            live_mae=live,
        )

    # The body is the service's own model (its target in the schema): FastAPI reads it here.
    feedback.__annotations__["body"] = request_model
    router.add_api_route(
        "/v1/feedback",
        feedback,
        methods=["POST"],
        summary="Observed values for earlier predictions",
        responses=error_responses(400, 401, 403, 413, 422, 503),
    )
    return router
