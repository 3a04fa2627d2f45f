"""``/v1/alerts``: alerts newest first, one alert with its history, acknowledgement."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigie.auth.verify import Principal
from vigie.contract.errors import Conflict, NotFound
from vigie.contract.levels import Level
from vigie_services.alerting.api.deps import (
    AlertId,
    AlertingApi,
    Cursor,
    IdentFilter,
    Limit,
    errors,
)
from vigie_services.alerting.api.responses import (
    AlertDetail,
    AlertOut,
    AlertPage,
    DeliveryDetail,
)
from vigie_services.alerting.api.routing import ResourceRouter
from vigie_services.alerting.models import Alert, Delivery, DeliveryAttempt, Transition
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.reminders import acknowledge
from vigie_services.alerting.schemas import AckIn


def find_alert(s: Session, alert_id: int) -> Alert:
    alert = s.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def alert_detail(s: Session, alert: Alert) -> AlertDetail:
    """The alert with its transitions and its deliveries with their attempts, oldest first."""
    transitions = s.scalars(
        select(Transition).where(Transition.alert_id == alert.id).order_by(Transition.id)
    ).all()
    deliveries = s.scalars(
        select(Delivery).where(Delivery.alert_id == alert.id).order_by(Delivery.id)
    ).all()
    attempts: dict[int, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
    for a in s.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
        .order_by(DeliveryAttempt.id)
    ):
        attempts[a.delivery_id].append(a)
    return AlertDetail.from_row(
        alert,
        transitions=transitions,
        deliveries=[DeliveryDetail.from_row(d, attempt_log=attempts[d.id]) for d in deliveries],
    )


def router(api: AlertingApi) -> APIRouter:
    r = ResourceRouter(prefix="/v1/alerts", tags=["alerts"])
    read = Depends(api.auth.requires("alerts:read"))
    ack_scope = Depends(api.auth.requires("alerts:ack"))

    @r.get("", summary="Alerts, newest first", dependencies=[read], responses=errors(422))
    async def list_alerts(
        limit: Limit = 50,
        cursor: Cursor = None,
        status: Literal["open", "resolved"] | None = None,
        service: IdentFilter = None,
        asset_id: IdentFilter = None,
        level: Level | None = None,
    ) -> AlertPage:
        def q(s: Session) -> AlertPage:
            stmt = select(Alert).order_by(Alert.id.desc()).limit(limit)
            for column, value in (
                (Alert.status, status), (Alert.service, service), (Alert.asset_id, asset_id),
                (Alert.level, level.value if level else None),
            ):  # fmt: skip
                if value is not None:
                    stmt = stmt.where(column == value)
            if cursor is not None:
                stmt = stmt.where(Alert.id < cursor)
            return AlertPage.of(s.scalars(stmt).all(), limit)

        return await api.tx(q)

    @r.get("/{alert_id}", summary="One alert, its transitions and deliveries",
           dependencies=[read], responses=errors(404, 422))  # fmt: skip
    async def get_alert(alert_id: AlertId) -> AlertDetail:
        return await api.tx(lambda s: alert_detail(s, find_alert(s, alert_id)))

    @r.post("/{alert_id}/ack", summary="Acknowledge an open alert (stops reminders)",
            responses=errors(400, 404, 409, 422))  # fmt: skip
    async def ack_alert(
        alert_id: AlertId, body: AckIn, principal: Annotated[Principal, ack_scope]
    ) -> AlertOut:
        def q(s: Session) -> AlertOut:
            alert = find_alert(s, alert_id)
            if alert.status != "open":
                raise Conflict(
                    f"alert {alert_id} is {alert.status}; only open alerts are acknowledged"
                )
            if alert.acknowledged_at is not None:
                raise Conflict(
                    f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}"
                )
            acknowledge(s, alert, principal.sub, body.comment, utcnow())
            return AlertOut.model_validate(alert)

        out = await api.tx(q)
        api.on_change()
        return out

    return r
