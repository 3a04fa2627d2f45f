"""HTTP API of alerting: alerts, acknowledgement, silences, subscribers, dead letters."""

from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vigie.auth.verify import Authenticator, Principal
from vigie.contract.errors import Conflict, NotFound, Unprocessable, field_error
from vigie.contract.levels import Level
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.models import (
    Alert,
    Delivery,
    DeliveryAttempt,
    Silence,
    Subscriber,
    Transition,
)
from vigie_services.alerting.notifiers import validate_target
from vigie_services.alerting.notifiers.base import DeliveryError, Notification, Notifier
from vigie_services.alerting.processing import acknowledge, utc_naive, utcnow
from vigie_services.alerting.schemas import AckIn, SilenceIn, SubscriberIn, SubscriberPatch, iso

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[int | None, Query(ge=1, description="next_cursor of the previous page")]


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id, "service": a.service, "asset_id": a.asset_id, "status": a.status,
        "level": a.level, "peak_level": a.peak_level, "opened_at": iso(a.opened_at),
        "resolved_at": iso(a.resolved_at), "acknowledged_at": iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by, "ack_comment": a.ack_comment, "value": a.value,
        "unit": a.unit, "threshold": a.threshold, "message": a.message,
        "model_version": a.model_version,
    }  # fmt: skip


def transition_json(t: Transition) -> dict[str, Any]:
    return {
        "id": t.id, "kind": t.kind, "from_level": t.from_level, "to_level": t.to_level,
        "at": iso(t.at), "observed_at": iso(t.observed_at), "value": t.value,
        "message": t.message, "actor": t.actor, "event_id": t.event_id,
    }  # fmt: skip


def delivery_json(d: Delivery, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    out = {
        "id": d.id, "alert_id": d.alert_id, "transition_id": d.transition_id,
        "subscriber_id": d.subscriber_id, "channel": d.channel, "target": d.target,
        "status": d.status, "reason": d.reason, "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at), "created_at": iso(d.created_at),
        "sent_at": iso(d.sent_at),
    }  # fmt: skip
    if attempts is not None:
        out["attempt_log"] = [
            {"number": a.number, "at": iso(a.at), "outcome": a.outcome, "reason": a.reason,
             "duration_ms": a.duration_ms}
            for a in attempts
        ]  # fmt: skip
    return out


def subscriber_json(s: Subscriber) -> dict[str, Any]:
    return {
        "id": s.id, "name": s.name, "channel": s.channel, "target": s.target,
        "services": s.services, "assets": s.assets, "min_level": s.min_level,
        "language": s.language, "enabled": s.enabled, "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    }  # fmt: skip


def silence_json(s: Silence) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": s.id, "service": s.service, "asset_id": s.asset_id, "level": s.level,
        "starts_at": iso(s.starts_at), "ends_at": iso(s.ends_at), "author": s.author,
        "comment": s.comment, "created_at": iso(s.created_at), "expired_at": iso(s.expired_at),
        "active": s.expired_at is None and s.starts_at <= now < s.ends_at,
    }  # fmt: skip


def page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


def _check_target(channel: str, target: str) -> None:
    problem = validate_target(channel, target)
    if problem is not None:
        raise Unprocessable(
            f"target: {problem}",
            details=[field_error(("body", "target"), problem, "invalid_target")],
        )


def build_router(
    sessions: sessionmaker[Session],
    auth: Authenticator,
    notifiers: Callable[[], dict[str, Notifier]],
    public_url: str,
    on_change: Callable[[], None],
    db: DatabaseThread,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    read = Depends(auth.requires("alerts:read"))
    ack_scope = Depends(auth.requires("alerts:ack"))
    admin = Depends(auth.requires("subscribers:admin"))

    def in_tx(fn: Callable[[Session], Any]) -> Any:
        with sessions.begin() as session:
            return fn(session)

    async def tx(fn: Callable[[Session], Any]) -> Any:
        return await db.call(in_tx, fn)

    # -- alerts ------------------------------------------------------------------------------
    @router.get("/alerts", summary="Alerts, newest first", dependencies=[read])
    async def list_alerts(
        limit: Limit = 50,
        cursor: Cursor = None,
        status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
        service: str | None = None,
        asset_id: str | None = None,
        level: Level | None = None,
    ) -> dict[str, Any]:
        def q(s: Session) -> list[dict[str, Any]]:
            stmt = select(Alert).order_by(Alert.id.desc()).limit(limit)
            for column, value in (
                (Alert.status, status), (Alert.service, service), (Alert.asset_id, asset_id),
                (Alert.level, level.value if level else None),
            ):  # fmt: skip
                if value is not None:
                    stmt = stmt.where(column == value)
            if cursor is not None:
                stmt = stmt.where(Alert.id < cursor)
            return [alert_json(a) for a in s.scalars(stmt)]

        return page(await tx(q), limit)

    def _alert(s: Session, alert_id: int) -> Alert:
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        return alert

    @router.get("/alerts/{alert_id}", summary="One alert, its transitions and deliveries",
                dependencies=[read])  # fmt: skip
    async def get_alert(alert_id: int) -> dict[str, Any]:
        def q(s: Session) -> dict[str, Any]:
            alert = _alert(s, alert_id)
            transitions = s.scalars(
                select(Transition).where(Transition.alert_id == alert_id).order_by(Transition.id)
            ).all()
            deliveries = s.scalars(
                select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)
            ).all()
            attempts: dict[int, list[DeliveryAttempt]] = {}
            for a in s.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
                .order_by(DeliveryAttempt.id)
            ):
                attempts.setdefault(a.delivery_id, []).append(a)
            return {
                **alert_json(alert),
                "transitions": [transition_json(t) for t in transitions],
                "deliveries": [delivery_json(d, attempts.get(d.id, [])) for d in deliveries],
            }

        return await tx(q)

    @router.post("/alerts/{alert_id}/ack", summary="Acknowledge an open alert (stops reminders)")
    async def ack_alert(
        alert_id: int, body: AckIn, principal: Annotated[Principal, ack_scope]
    ) -> dict[str, Any]:
        def q(s: Session) -> dict[str, Any]:
            alert = _alert(s, alert_id)
            if alert.status != "open":
                raise Conflict(
                    f"alert {alert_id} is {alert.status}; only open alerts are acknowledged"
                )
            if alert.acknowledged_at is not None:
                raise Conflict(
                    f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}"
                )
            acknowledge(s, alert, principal.sub, body.comment, utcnow())
            return alert_json(alert)

        out = await tx(q)
        on_change()
        return out

    # -- silences ----------------------------------------------------------------------------
    @router.get("/silences", summary="Silences", dependencies=[read])
    async def list_silences(active: bool | None = None) -> dict[str, Any]:
        def q(s: Session) -> list[dict[str, Any]]:
            items = [
                silence_json(x) for x in s.scalars(select(Silence).order_by(Silence.id.desc()))
            ]
            return [i for i in items if active is None or i["active"] == active]

        return {"items": await tx(q)}

    @router.post("/silences", status_code=201, summary="Silence matching notifications for a while")
    async def create_silence(
        body: SilenceIn, principal: Annotated[Principal, ack_scope]
    ) -> dict[str, Any]:
        now = utcnow()
        starts = utc_naive(body.starts_at) if body.starts_at else now
        ends = (
            utc_naive(body.ends_at)
            if body.ends_at
            else starts + timedelta(seconds=body.duration_s or 0)
        )

        def q(s: Session) -> dict[str, Any]:
            silence = Silence(
                service=body.service, asset_id=body.asset_id,
                level=body.level.value if body.level else None, starts_at=starts, ends_at=ends,
                author=principal.sub, comment=body.comment, created_at=now,
            )  # fmt: skip
            s.add(silence)
            s.flush()
            return silence_json(silence)

        return await tx(q)

    @router.delete("/silences/{silence_id}", summary="Expire a silence now")
    async def expire_silence(
        silence_id: int, _p: Annotated[Principal, ack_scope]
    ) -> dict[str, Any]:
        def q(s: Session) -> dict[str, Any]:
            silence = s.get(Silence, silence_id)
            if silence is None:
                raise NotFound(f"no silence {silence_id}")
            if silence.expired_at is None:
                silence.expired_at = utcnow()
            return silence_json(silence)

        return await tx(q)

    # -- subscribers -------------------------------------------------------------------------
    def _subscriber(s: Session, sub_id: int) -> Subscriber:
        sub = s.get(Subscriber, sub_id)
        if sub is None:
            raise NotFound(f"no subscriber {sub_id}")
        return sub

    @router.get("/subscribers", summary="Subscribers", dependencies=[admin])
    async def list_subscribers() -> dict[str, Any]:
        return {
            "items": await tx(
                lambda s: [
                    subscriber_json(x)
                    for x in s.scalars(select(Subscriber).order_by(Subscriber.id))
                ]
            )
        }

    @router.post("/subscribers", status_code=201, summary="Add a subscriber", dependencies=[admin])
    async def create_subscriber(body: SubscriberIn) -> dict[str, Any]:
        _check_target(body.channel, body.target)
        now = utcnow()

        def q(s: Session) -> dict[str, Any]:
            sub = Subscriber(
                **body.model_dump(exclude={"min_level"}), min_level=body.min_level.value,
                created_at=now, updated_at=now,
            )  # fmt: skip
            s.add(sub)
            s.flush()
            return subscriber_json(sub)

        try:
            return await tx(q)
        except IntegrityError:
            raise Conflict(f"a subscriber named {body.name!r} exists") from None

    @router.get("/subscribers/{sub_id}", summary="One subscriber", dependencies=[admin])
    async def get_subscriber(sub_id: int) -> dict[str, Any]:
        return await tx(lambda s: subscriber_json(_subscriber(s, sub_id)))

    @router.patch("/subscribers/{sub_id}", summary="Change a subscriber", dependencies=[admin])
    async def patch_subscriber(sub_id: int, body: SubscriberPatch) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)

        def q(s: Session) -> dict[str, Any]:
            sub = _subscriber(s, sub_id)
            _check_target(changes.get("channel", sub.channel), changes.get("target", sub.target))
            for key, value in changes.items():
                setattr(sub, key, value.value if isinstance(value, Level) else value)
            sub.updated_at = utcnow()
            return subscriber_json(sub)

        try:
            return await tx(q)
        except IntegrityError:
            raise Conflict("a subscriber with that name exists") from None

    @router.delete(
        "/subscribers/{sub_id}", status_code=204, summary="Remove a subscriber",
        dependencies=[admin],
    )  # fmt: skip
    async def delete_subscriber(sub_id: int) -> None:
        def q(s: Session) -> None:
            sub = _subscriber(s, sub_id)
            if s.scalar(select(Delivery.id).where(Delivery.subscriber_id == sub_id).limit(1)):
                # Deliveries keep their history: disable instead of deleting the row.
                sub.enabled = False
                sub.name = f"{sub.name} (deleted #{sub.id})"[:128]
            else:
                s.delete(sub)

        await tx(q)

    @router.post("/subscribers/{sub_id}/test", summary="Send a test notification now",
                 dependencies=[admin])  # fmt: skip
    async def test_subscriber(sub_id: int) -> dict[str, Any]:
        sub = await tx(lambda s: subscriber_json(_subscriber(s, sub_id)))
        now = utcnow().replace(tzinfo=UTC)
        notification = Notification(
            delivery_id=0, alert_id=0, transition_id=0, kind="test", service="alerting",
            asset_id="test", level="ALERTE", previous_level="NORMAL", value=None, unit=None,
            threshold=None, message="Test notification from Vigie alerting", observed_at=now,
            opened_at=now, resolved_at=None, model_version="-", language=sub["language"],
            alert_url=f"{public_url.rstrip('/')}/v1/subscribers/{sub_id}",
        )  # fmt: skip
        notifier = notifiers().get(sub["channel"])
        if notifier is None:
            return {"sent": False, "reason": f"no notifier for channel {sub['channel']}"}
        try:
            await notifier.send(notification, sub["target"])
        except DeliveryError as exc:
            return {"sent": False, "reason": exc.reason, "permanent": exc.permanent}
        return {"sent": True, "channel": sub["channel"], "target": sub["target"]}

    # -- deliveries (dead letters) -----------------------------------------------------------
    @router.get("/deliveries", summary="Deliveries; status=dead is the dead-letter view",
                dependencies=[read])  # fmt: skip
    async def list_deliveries(
        limit: Limit = 50,
        cursor: Cursor = None,
        status: Annotated[
            str | None, Query(pattern="^(pending|sending|retrying|sent|dead|suppressed)$")
        ] = None,
    ) -> dict[str, Any]:
        def q(s: Session) -> list[dict[str, Any]]:
            stmt = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
            if status is not None:
                stmt = stmt.where(Delivery.status == status)
            if cursor is not None:
                stmt = stmt.where(Delivery.id < cursor)
            return [delivery_json(d) for d in s.scalars(stmt)]

        return page(await tx(q), limit)

    @router.post("/deliveries/{delivery_id}/retry", summary="Send a dead delivery again")
    async def retry_delivery(
        delivery_id: int, _p: Annotated[Principal, ack_scope]
    ) -> dict[str, Any]:
        def q(s: Session) -> dict[str, Any]:
            d = s.get(Delivery, delivery_id)
            if d is None:
                raise NotFound(f"no delivery {delivery_id}")
            if d.status != "dead":
                raise Conflict(f"delivery {delivery_id} is {d.status}; only dead ones are retried")
            d.status, d.attempts, d.next_attempt_at = "pending", 0, utcnow()
            return delivery_json(d)

        out = await tx(q)
        on_change()
        return out

    return router
