"""``/v1/deliveries``: every notification sent or due; ``status=dead`` is the dead-letter view."""

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigie.auth.verify import Principal
from vigie.contract.errors import Conflict, NotFound
from vigie_services.alerting.api.deps import AlertingApi, Cursor, DeliveryId, Limit, errors
from vigie_services.alerting.api.responses import DeliveryOut, DeliveryPage, DeliveryStatus
from vigie_services.alerting.api.routing import ResourceRouter
from vigie_services.alerting.models import Delivery
from vigie_services.alerting.processing import utcnow


def router(api: AlertingApi) -> APIRouter:
    r = ResourceRouter(prefix="/v1/deliveries", tags=["deliveries"])
    read = Depends(api.auth.requires("alerts:read"))
    ack_scope = Depends(api.auth.requires("alerts:ack"))

    @r.get("", summary="Deliveries; status=dead is the dead-letter view", dependencies=[read],
           responses=errors(422))  # fmt: skip
    async def list_deliveries(
        limit: Limit = 50, cursor: Cursor = None, status: DeliveryStatus | None = None
    ) -> DeliveryPage:
        def q(s: Session) -> DeliveryPage:
            stmt = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
            if status is not None:
                stmt = stmt.where(Delivery.status == status)
            if cursor is not None:
                stmt = stmt.where(Delivery.id < cursor)
            return DeliveryPage.of(s.scalars(stmt).all(), limit)

        return await api.tx(q)

    @r.post("/{delivery_id}/retry", summary="Send a dead delivery again",
            responses=errors(404, 409, 422))  # fmt: skip
    async def retry_delivery(
        delivery_id: DeliveryId, _p: Annotated[Principal, ack_scope]
    ) -> DeliveryOut:
        def q(s: Session) -> DeliveryOut:
            d = s.get(Delivery, delivery_id)
            if d is None:
                raise NotFound(f"no delivery {delivery_id}")
            if d.status != "dead":
                raise Conflict(f"delivery {delivery_id} is {d.status}; only dead ones are retried")
            d.status, d.attempts, d.next_attempt_at = "pending", 0, utcnow()
            return DeliveryOut.model_validate(d)

        out = await api.tx(q)
        api.on_change()
        return out

    return r
