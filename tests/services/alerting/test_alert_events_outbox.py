"""Alerting's transitions table as an outbox (AlertEventPublisher) drained by the runtime's
OutboxPublisher: real redis-server, the alerting schema migrated on SQLite and PostgreSQL.

Every transition committed ``published = false`` reaches ``vigie:alerts`` (one field ``event``,
the alert event JSON) and ``vigie:alerts:live`` in id order, once, and is marked published; a
Redis restart delays them and loses none."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.support.servers import RedisServer, wait_until
from vigie_services.alerting.alert_events import AlertEventPublisher
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.models import Alert, Transition

STREAM, CHANNEL = "vigie:alerts", "vigie:alerts:live"
T0 = datetime(2026, 6, 1, 12, 0)


def commit_transitions(sessions: sessionmaker[Session], asset: str, kinds: list[str]) -> None:
    """One alert of ``asset`` and its transitions, unpublished, as processing commits them."""
    with sessions.begin() as session:
        alert = Alert(
            service="svc", asset_id=asset, status="open", level="ALERTE", peak_level="ALERTE",
            opened_at=T0, last_notified_at=T0, value=91.0, unit="degC", threshold=90.0,
            message=f"{asset} is ALERTE", model_version="v1",
        )  # fmt: skip
        session.add(alert)
        session.flush()
        for kind in kinds:
            transition = Transition(
                alert_id=alert.id, kind=kind, from_level="NORMAL", to_level="ALERTE",
                at=T0, observed_at=T0, value=91.0, message=f"{asset} {kind}", published=False,
            )  # fmt: skip
            session.add(transition)


def unpublished(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(Transition.id).where(Transition.published.is_(False))))


def stream_events(server: RedisServer) -> list[dict[str, Any]]:
    entries = server.client().xrange(STREAM)
    for _id, fields in entries:
        assert set(fields) == {b"event"}
    return [orjson.loads(fields[b"event"]) for _id, fields in entries]


def run(server: RedisServer, sessions: sessionmaker[Session], scenario: Any) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        db = DatabaseThread()
        publisher = AlertEventPublisher(client, sessions, STREAM, CHANNEL, 10_000, db)
        task = asyncio.create_task(publisher.run())
        try:
            await scenario(publisher)
        finally:
            task.cancel()  # as the app's lifespan stops it
            with pytest.raises(asyncio.CancelledError):
                await task
            await client.aclose()
            db.shutdown()

    asyncio.run(main())


def test_transitions_reach_the_stream_and_channel_in_order_once(
    redis_server: RedisServer, sessions: sessionmaker[Session]
) -> None:
    sub = redis_server.client().pubsub()
    sub.subscribe(CHANNEL)
    assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    commit_transitions(sessions, "T1", ["opened", "escalated"])  # before the publisher starts

    async def scenario(publisher: AlertEventPublisher) -> None:
        await asyncio.to_thread(wait_until, lambda: not unpublished(sessions), 10,
                                what="the first transitions")  # fmt: skip
        commit_transitions(sessions, "T2", ["opened"])
        publisher.wake()
        await asyncio.to_thread(wait_until, lambda: not unpublished(sessions), 5,
                                what="the woken publisher")  # fmt: skip
        await asyncio.sleep(1.2)  # more than a turn: nothing is sent again

    run(redis_server, sessions, scenario)
    events = stream_events(redis_server)
    assert [(e["asset_id"], e["kind"]) for e in events] == [
        ("T1", "opened"), ("T1", "escalated"), ("T2", "opened"),
    ]  # fmt: skip
    ids = [e["transition_id"] for e in events]
    assert ids == sorted(ids)
    assert events[0]["level"] == "ALERTE" and events[0]["at"] == "2026-06-01T12:00:00Z"
    live = [sub.get_message(timeout=2, ignore_subscribe_messages=True) for _ in range(3)]
    assert [orjson.loads(m["data"]) for m in live if m] == events
    sub.close()


def test_a_redis_restart_delays_alert_events_and_loses_none(
    redis_server: RedisServer, sessions: sessionmaker[Session]
) -> None:
    async def scenario(publisher: AlertEventPublisher) -> None:
        commit_transitions(sessions, "T1", ["opened"])
        await asyncio.to_thread(wait_until, lambda: not unpublished(sessions), 10,
                                what="the first transition")  # fmt: skip
        redis_server.stop()
        commit_transitions(sessions, "T2", ["opened", "escalated"])
        commit_transitions(sessions, "T3", ["opened"])
        publisher.wake()
        await asyncio.sleep(1.0)  # the publisher fails and backs off
        assert len(unpublished(sessions)) == 3
        await asyncio.to_thread(redis_server.start)  # AOF: the first event is still there
        await asyncio.to_thread(wait_until, lambda: not unpublished(sessions), 15,
                                what="the transitions queued while redis was down")  # fmt: skip

    run(redis_server, sessions, scenario)
    events = stream_events(redis_server)
    assert [(e["asset_id"], e["kind"]) for e in events] == [
        ("T1", "opened"), ("T2", "opened"), ("T2", "escalated"), ("T3", "opened"),
    ]  # fmt: skip
