"""Transitions that are not level changes: reminders of open alerts nobody acknowledged, and the
acknowledgements that stop them. Each runs inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigie_services.alerting.fanout import Audience, fan_out
from vigie_services.alerting.lifecycle import Kind
from vigie_services.alerting.models import Alert, Transition


def due_reminders(
    session: Session, now: datetime, repeat_interval_s: float, public_url: str
) -> list[tuple[Alert, Transition]]:
    """Remind about open, unacknowledged alerts last notified a repeat interval ago."""
    cutoff = datetime.fromtimestamp(
        now.replace(tzinfo=UTC).timestamp() - repeat_interval_s, UTC
    ).replace(tzinfo=None)
    alerts = session.scalars(
        select(Alert)
        .where(
            Alert.status == "open",
            Alert.acknowledged_at.is_(None),
            Alert.last_notified_at <= cutoff,
        )
        .with_for_update()
    ).all()
    made = []
    audience = Audience.load(session, now) if alerts else None
    for alert in alerts:
        transition = Transition(
            alert_id=alert.id,
            kind=Kind.REMINDER.value,
            from_level=alert.level,
            to_level=alert.level,
            at=now,
            observed_at=now,
            value=alert.value,
            message=alert.message,
            published=False,
        )
        session.add(transition)
        session.flush()
        alert.last_notified_at = now
        fan_out(session, alert, transition, now, public_url, audience)
        made.append((alert, transition))
    return made


def acknowledge(
    session: Session, alert: Alert, who: str, comment: str, now: datetime
) -> Transition:
    alert.acknowledged_at = now
    alert.acknowledged_by = who
    alert.ack_comment = comment
    transition = Transition(
        alert_id=alert.id,
        kind=Kind.ACKNOWLEDGED.value,
        from_level=alert.level,
        to_level=alert.level,
        at=now,
        observed_at=now,
        value=alert.value,
        message=comment or f"acknowledged by {who}",
        actor=who,
        published=False,
    )
    session.add(transition)
    session.flush()
    return transition
