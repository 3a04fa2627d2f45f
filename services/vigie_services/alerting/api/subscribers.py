"""``/v1/subscribers``: who is notified, on which channel, of what; and a test notification."""

from datetime import UTC

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigie.contract.errors import Conflict, NotFound, Unprocessable, field_error
from vigie.contract.levels import Level
from vigie_services.alerting.api.deps import AlertingApi, SubscriberId, errors
from vigie_services.alerting.api.responses import (
    NotificationFailed,
    NotificationSent,
    SubscriberList,
    SubscriberOut,
)
from vigie_services.alerting.api.routing import ResourceRouter
from vigie_services.alerting.models import Delivery, Subscriber
from vigie_services.alerting.notifiers import validate_target
from vigie_services.alerting.notifiers.base import DeliveryError, Notification
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.schemas import SubscriberIn, SubscriberPatch


def check_target(channel: str, target: str) -> None:
    problem = validate_target(channel, target)
    if problem is not None:
        raise Unprocessable(
            f"target: {problem}",
            details=[field_error(("body", "target"), problem, "invalid_target")],
        )


def find_subscriber(s: Session, sub_id: int) -> Subscriber:
    sub = s.get(Subscriber, sub_id)
    if sub is None:
        raise NotFound(f"no subscriber {sub_id}")
    return sub


def router(api: AlertingApi) -> APIRouter:
    r = ResourceRouter(
        prefix="/v1/subscribers",
        tags=["subscribers"],
        dependencies=[Depends(api.auth.requires("subscribers:admin"))],
    )

    @r.get("", summary="Subscribers", responses=errors())
    async def list_subscribers() -> SubscriberList:
        def q(s: Session) -> SubscriberList:
            rows = s.scalars(select(Subscriber).order_by(Subscriber.id))
            return SubscriberList(items=[SubscriberOut.model_validate(x) for x in rows])

        return await api.tx(q)

    @r.post("", status_code=201, summary="Add a subscriber", responses=errors(400, 409, 422))
    async def create_subscriber(body: SubscriberIn) -> SubscriberOut:
        check_target(body.channel, body.target)
        now = utcnow()

        def q(s: Session) -> SubscriberOut:
            sub = Subscriber(
                **body.model_dump(exclude={"min_level"}), min_level=body.min_level.value,
                created_at=now, updated_at=now,
            )  # fmt: skip
            s.add(sub)
            s.flush()
            return SubscriberOut.model_validate(sub)

        try:
            return await api.tx(q)
        except IntegrityError:
            raise Conflict(f"a subscriber named {body.name!r} exists") from None

    @r.get("/{sub_id}", summary="One subscriber", responses=errors(404, 422))
    async def get_subscriber(sub_id: SubscriberId) -> SubscriberOut:
        return await api.tx(lambda s: SubscriberOut.model_validate(find_subscriber(s, sub_id)))

    @r.patch("/{sub_id}", summary="Change a subscriber", responses=errors(400, 404, 409, 422))
    async def patch_subscriber(sub_id: SubscriberId, body: SubscriberPatch) -> SubscriberOut:
        changes = body.model_dump(exclude_unset=True)

        def q(s: Session) -> SubscriberOut:
            sub = find_subscriber(s, sub_id)
            check_target(changes.get("channel", sub.channel), changes.get("target", sub.target))
            for key, value in changes.items():
                setattr(sub, key, value.value if isinstance(value, Level) else value)
            sub.updated_at = utcnow()
            return SubscriberOut.model_validate(sub)

        try:
            return await api.tx(q)
        except IntegrityError:
            raise Conflict("a subscriber with that name exists") from None

    @r.delete("/{sub_id}", status_code=204, summary="Remove a subscriber",
              responses=errors(404, 422))  # fmt: skip
    async def delete_subscriber(sub_id: SubscriberId) -> None:
        def q(s: Session) -> None:
            sub = find_subscriber(s, sub_id)
            if s.scalar(select(Delivery.id).where(Delivery.subscriber_id == sub_id).limit(1)):
                # Deliveries keep their history: disable instead of deleting the row.
                sub.enabled = False
                sub.name = f"{sub.name} (deleted #{sub.id})"[:128]
            else:
                s.delete(sub)

        await api.tx(q)

    @r.post("/{sub_id}/test", summary="Send a test notification now",
            response_model_exclude_none=True, responses=errors(404, 422))  # fmt: skip
    async def test_subscriber(sub_id: SubscriberId) -> NotificationSent | NotificationFailed:
        sub = await api.tx(lambda s: SubscriberOut.model_validate(find_subscriber(s, sub_id)))
        now = utcnow().replace(tzinfo=UTC)
        notification = Notification(
            delivery_id=0, alert_id=0, transition_id=0, kind="test", service="alerting",
            asset_id="test", level="ALERTE", previous_level="NORMAL", value=None, unit=None,
            threshold=None, message="Test notification from Vigie alerting", observed_at=now,
            opened_at=now, resolved_at=None, model_version="-", language=sub.language,
            alert_url=f"{api.public_url.rstrip('/')}/v1/subscribers/{sub_id}",
        )  # fmt: skip
        notifier = api.notifiers().get(sub.channel)
        if notifier is None:
            return NotificationFailed(sent=False, reason=f"no notifier for channel {sub.channel}")
        try:
            await notifier.send(notification, sub.target)
        except DeliveryError as exc:
            return NotificationFailed(sent=False, reason=exc.reason, permanent=exc.permanent)
        return NotificationSent(sent=True, channel=sub.channel, target=sub.target)

    return r
