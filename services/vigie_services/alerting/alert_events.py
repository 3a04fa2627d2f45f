"""Publishes alerting's own events (every transition) to ``vigie:alerts`` and ``vigie:alerts:live``.

Transitions are written with ``published = false`` in the same transaction that creates them: the
transitions table is the outbox (:class:`AlertEventPublisher` is its :class:`~vigie.io.
outbox_publisher.Outbox`), drained by the runtime's :class:`~vigie.io.outbox_publisher.
OutboxPublisher`, which sends them in order (one Lua script call per batch, the stream entry's
one field ``event`` holding the JSON) and then marks them, so a Redis outage delays alert events
but loses none (at-least-once: ``transition_id`` identifies a repeat).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vigie.io.outbox_publisher import OutboxPublisher
from vigie.io.streams import StreamTarget, StreamWriter
from vigie_services.alerting.dbthread import DatabaseThread, relaxed_commit
from vigie_services.alerting.models import Alert, Transition

log = logging.getLogger(__name__)


def alert_event(t: Transition, a: Alert) -> dict[str, Any]:
    return {
        "transition_id": t.id,
        "alert_id": a.id,
        "kind": t.kind,
        "service": a.service,
        "asset_id": a.asset_id,
        "level": t.to_level,
        "previous_level": t.from_level,
        "status": a.status,
        "at": t.at.isoformat() + "Z",
        "observed_at": t.observed_at.isoformat() + "Z",
        "value": t.value,
        "unit": a.unit,
        "threshold": a.threshold,
        "message": t.message,
        "actor": t.actor,
    }


class AlertEventPublisher:
    """The transitions not yet published, as an outbox, and the publisher that drains it.

    :meth:`run` is the background loop (a task of the app's lifespan, cancelled at shutdown);
    :meth:`wake` says new transitions were committed. Database calls run on the alerting
    database thread (``db``)."""

    def __init__(
        self,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        stream: str,
        channel: str,
        maxlen: int,
        db: DatabaseThread,
    ) -> None:
        self._sessions = sessions
        self._publisher = OutboxPublisher(
            self,
            StreamWriter(client, StreamTarget(stream, channel, maxlen)),
            name="alert events",
            interval_s=1.0,  # also picks up transitions no wake-up announced
            retry_s=(0.2, 5.0),
            run=db.call,
            on_failure=lambda exc: log.warning("alert events wait for redis (%s)", exc),
        )

    def wake(self) -> None:
        self._publisher.wake()

    async def run(self) -> None:
        await self._publisher.run()

    # -- the Outbox protocol over the transitions table -----------------------------------
    def pending(self) -> bool:
        return True  # no cheap way to tell: take() asks, one indexed query per turn

    def take(self, limit: int) -> list[tuple[int, bytes]]:
        with self._sessions() as session:
            rows = session.execute(
                select(Transition, Alert)
                .join(Alert, Alert.id == Transition.alert_id)
                .where(Transition.published.is_(False))
                .order_by(Transition.id)
                .limit(limit)
            ).all()
            return [(t.id, orjson.dumps(alert_event(t, a))) for t, a in rows]

    def mark_sent(self, ids: Sequence[int]) -> None:
        with self._sessions.begin() as session:
            relaxed_commit(session)
            session.execute(
                update(Transition).where(Transition.id.in_(list(ids))).values(published=True)
            )

    def release(self) -> None:
        pass  # one drainer per process: nothing claimed (another instance may send repeats)
