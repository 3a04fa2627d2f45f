"""Publishes alerting's own events (every transition) to ``vigie:alerts`` and ``vigie:alerts:live``.

Transitions are written with ``published = false`` in the same transaction that creates them; this
loop sends them in order and then marks them, so a Redis outage delays alert events but loses none
(at-least-once: ``transition_id`` identifies a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vigie.io.redis import REDIS_ERRORS
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
    def __init__(
        self,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        stream: str,
        channel: str,
        maxlen: int,
        db: DatabaseThread,
    ) -> None:
        self._db = db
        self._redis = client
        self._sessions = sessions
        self._stream = stream
        self._channel = channel
        self._maxlen = maxlen
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def _unpublished(self) -> list[tuple[int, bytes]]:
        with self._sessions() as session:
            rows = session.execute(
                select(Transition, Alert)
                .join(Alert, Alert.id == Transition.alert_id)
                .where(Transition.published.is_(False))
                .order_by(Transition.id)
                .limit(500)
            ).all()
            return [(t.id, orjson.dumps(alert_event(t, a))) for t, a in rows]

    def _mark(self, ids: list[int]) -> None:
        with self._sessions.begin() as session:
            relaxed_commit(session)
            session.execute(update(Transition).where(Transition.id.in_(ids)).values(published=True))

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                batch = await self._db.call(self._unpublished)
                if batch:
                    async with self._redis.pipeline(transaction=True) as pipe:
                        for _id, payload in batch:
                            pipe.xadd(
                                self._stream,
                                {"event": payload},
                                maxlen=self._maxlen,
                                approximate=True,
                            )
                            pipe.publish(self._channel, payload)
                        await pipe.execute()
                    await self._db.call(self._mark, [i for i, _ in batch])
                    backoff = 0.2
                    continue
            except REDIS_ERRORS as exc:
                log.warning("alert events wait for redis (%s)", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                log.exception("publishing alert events failed; retrying")
                await asyncio.sleep(1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
