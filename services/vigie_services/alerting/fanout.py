"""Who hears about a transition: one delivery per interested subscriber, silenced or not.

Runs inside the caller's transaction, with the transition it fans out: its deliveries are
committed with it or not at all. The rules (filters, relevant level, silences, inhibition) are
:mod:`vigie_services.alerting.lifecycle`'s; suppressed deliveries are recorded with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigie.contract.levels import Level
from vigie_services.alerting.lifecycle import (
    Kind,
    inhibited,
    relevant_level,
    silence_applies,
    subscriber_wants,
)
from vigie_services.alerting.models import Alert, Delivery, Silence, Subscriber, Transition


@dataclass
class Audience:
    """Who may hear about transitions: loaded once per batch of events, not once per event."""

    subscribers: list[Subscriber]
    silences: list[Silence]

    @classmethod
    def load(cls, session: Session, now: datetime) -> Audience:
        subscribers = session.scalars(select(Subscriber).where(Subscriber.enabled.is_(True))).all()
        silences = session.scalars(
            select(Silence).where(
                Silence.expired_at.is_(None), Silence.ends_at > now, Silence.starts_at <= now
            )
        ).all()
        return cls(list(subscribers), list(silences))


def fan_out(
    session: Session,
    alert: Alert,
    transition: Transition,
    now: datetime,
    public_url: str,
    audience: Audience | None = None,
) -> list[str]:
    """Create one delivery per interested subscriber; returns the channels of those suppressed
    (silenced or inhibited: recorded with the reason, not sent)."""
    audience = audience or Audience.load(session, now)
    kind = Kind(transition.kind)
    after = Level(transition.to_level)
    before = Level(transition.from_level) if transition.from_level else None
    level = relevant_level(kind, before, after, Level(alert.peak_level))
    suppressed_by = _suppression(session, audience.silences, alert, after, level, now)
    suppressed: list[str] = []
    for sub in audience.subscribers:
        if not subscriber_wants(
            sub.services, sub.assets, Level(sub.min_level), alert.service, alert.asset_id, level
        ):
            continue
        session.add(
            Delivery(
                transition_id=transition.id,
                alert_id=alert.id,
                subscriber_id=sub.id,
                channel=sub.channel,
                target=sub.target,
                status="suppressed" if suppressed_by else "pending",
                reason=suppressed_by,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                payload=notification_payload(alert, transition, sub.language, public_url),
            )
        )
        if suppressed_by:
            suppressed.append(sub.channel)
    return suppressed


def _suppression(
    session: Session,
    silences: list[Silence],
    alert: Alert,
    after: Level,
    level: Level,
    now: datetime,
) -> str | None:
    for s in silences:
        if silence_applies(
            s.service, s.asset_id, s.level, s.starts_at, s.ends_at, s.expired_at is not None,
            service=alert.service, asset_id=alert.asset_id, level=level, now=now,
        ):  # fmt: skip
            return f"silenced by silence #{s.id} ({s.author}: {s.comment})"
    others = session.execute(
        select(Alert.id, Alert.level).where(
            Alert.asset_id == alert.asset_id, Alert.status == "open", Alert.id != alert.id
        )
    ).all()
    if inhibited(after, [Level(lvl) for _id, lvl in others]):
        critique = next(i for i, lvl in others if lvl == Level.CRITIQUE)
        return f"inhibited by open CRITIQUE alert #{critique} on asset {alert.asset_id}"
    return None


def notification_payload(
    alert: Alert, transition: Transition, language: str, public_url: str
) -> dict[str, Any]:
    """The stored body of a notification (``Notification`` without its delivery id)."""
    return {
        "alert_id": alert.id,
        "transition_id": transition.id,
        "kind": transition.kind,
        "service": alert.service,
        "asset_id": alert.asset_id,
        "level": transition.to_level,
        "previous_level": transition.from_level,
        "value": transition.value,
        "unit": alert.unit,
        "threshold": alert.threshold,
        "message": transition.message,
        "observed_at": transition.observed_at.replace(tzinfo=UTC).isoformat(),
        "opened_at": alert.opened_at.replace(tzinfo=UTC).isoformat(),
        "resolved_at": alert.resolved_at.replace(tzinfo=UTC).isoformat()
        if alert.resolved_at
        else None,
        "model_version": alert.model_version,
        "language": language,
        "alert_url": f"{public_url.rstrip('/')}/v1/alerts/{alert.id}",
    }
