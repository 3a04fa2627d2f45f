"""Bounded upkeep of the bookkeeping rows: forgetting old processed event ids, and sending again
the deliveries a crash left in flight. Each runs inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from vigie_services.alerting.models import Delivery, ProcessedEvent


def purge_processed(session: Session, before: datetime, limit: int) -> int:
    """Forget at most ``limit`` of the event ids processed before ``before`` (oldest first);
    returns how many. Bounded, so that each call is a short transaction."""
    oldest = (
        select(ProcessedEvent.event_id)
        .where(ProcessedEvent.processed_at < before)
        .order_by(ProcessedEvent.processed_at)
        .limit(limit)
    )
    result = session.execute(
        delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(oldest)),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def reset_interrupted_deliveries(session: Session) -> int:
    """Deliveries left ``sending`` by a crash go out again (at-least-once; receivers can
    drop a repeat by its delivery id)."""
    result = session.execute(
        update(Delivery).where(Delivery.status == "sending").values(status="pending")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
