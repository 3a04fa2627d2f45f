"""LevelPublisher on a real redis-server: stream + pub/sub, and the outbox when Redis is down."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from tests.support.servers import RedisServer, wait_until
from vigie.contract.level_event import LevelEvent, live_channel
from vigie.contract.levels import Level
from vigie.io.level_publisher import LevelPublisher
from vigie.io.outbox import Spool
from vigie.obs.metrics import ServiceMetrics

SERVICE = "svc"
STREAM = "vigie:levels"
TIMEOUT_S = 0.5


def event(asset: str = "T1", level: Level = Level.ALERTE, value: float = 91.0) -> LevelEvent:
    return LevelEvent.new(
        service=SERVICE,
        asset_id=asset,
        level=level,
        observed_at=datetime(2024, 3, 1, 12, tzinfo=UTC),
        value=value,
        unit="degC",
        threshold=90.0,
        model_version="2024-01-01T00-00-00Z-abcdef",
        message=f"{asset} is {level}",
    )


class Harness:
    def __init__(self, redis_url: str, spool: Spool, metrics: ServiceMetrics) -> None:
        kw: dict[str, Any] = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}
        self.redis_async = aioredis.Redis.from_url(redis_url, **kw)
        self.redis_sync = redis.Redis.from_url(redis_url, **kw)
        self.spool = spool
        self.metrics = metrics
        self.publisher = LevelPublisher(
            SERVICE,
            redis_async=self.redis_async,
            redis_sync=self.redis_sync,
            spool=spool,
            metrics=metrics,
            stream=STREAM,
            stream_maxlen=10_000,
            flush_interval_s=0.05,
        )

    async def close(self) -> None:
        await self.publisher.stop()
        await self.redis_async.aclose()
        self.redis_sync.close()

    def counter(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "vigie_level_events_total", {"service": SERVICE, "outcome": outcome}
        )
        return value or 0.0

    def failures(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "vigie_level_event_publish_failures_total", {"service": SERVICE}
        )
        return value or 0.0


def run(
    redis_server: RedisServer, tmp_path: Path, scenario: Callable[[Harness], Awaitable[None]]
) -> None:
    async def main() -> None:
        h = Harness(redis_server.url, Spool(tmp_path / "spool.sqlite"), ServiceMetrics(SERVICE))
        try:
            await scenario(h)
        finally:
            await h.close()

    asyncio.run(main())


def stream_events(redis_server: RedisServer) -> list[dict[str, Any]]:
    entries = redis_server.client().xrange(STREAM)
    for _id, fields in entries:
        assert set(fields) == {b"event"}  # one field per entry
    return [orjson.loads(fields[b"event"]) for _id, fields in entries]


def test_publish_writes_the_stream_and_the_live_channel(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = redis_server.client()
    sub = client.pubsub()
    sub.subscribe(live_channel(SERVICE))
    assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    ev = event()

    async def scenario(h: Harness) -> None:
        assert await h.publisher.publish(ev) == "published"
        assert h.counter("published") == 1
        assert h.counter("queued") == 0
        assert not h.spool.outbox.pending()

    run(redis_server, tmp_path, scenario)

    assert live_channel(SERVICE) == "vigie:levels:svc"
    [stored] = stream_events(redis_server)
    assert stored == orjson.loads(ev.to_json())
    assert stored["event_id"] == ev.event_id
    assert stored["level"] == "ALERTE"
    assert stored["asset_id"] == "T1"

    message = sub.get_message(timeout=2, ignore_subscribe_messages=True)
    assert message is not None
    assert message["channel"] == b"vigie:levels:svc"
    assert message["data"] == redis_server.client().xrange(STREAM)[0][1][b"event"]
    assert orjson.loads(message["data"]) == stored
    sub.close()


def test_concurrent_publishes_share_one_round_trip(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [event(asset=f"T{i}", value=float(i)) for i in range(20)]
    client = redis_server.client()

    def calls(command: str) -> int:
        stats: Any = client.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    async def scenario(h: Harness) -> None:
        # The first call loads the script (EVALSHA, NOSCRIPT, EVAL); later ones run it by hash.
        assert await h.publisher.publish(event(asset="T-first")) == "published"
        script, xadd = calls("evalsha"), calls("xadd")
        outcomes = await asyncio.gather(*(h.publisher.publish(e) for e in events))
        assert outcomes == ["published"] * 20
        assert calls("evalsha") - script == 1  # one command for the burst
        assert calls("xadd") - xadd == 20  # run by the script, one per event
        assert h.counter("published") == 21
        # A later publish is a round trip of its own.
        assert await h.publisher.publish(event(asset="T99")) == "published"
        assert calls("evalsha") - script == 2

    run(redis_server, tmp_path, scenario)
    ids = [e["event_id"] for e in stream_events(redis_server)]
    assert ids[1:21] == [e.event_id for e in events]  # in the order they were published


def test_a_burst_that_cannot_reach_redis_is_queued_whole(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [event(asset=f"T{i}", value=float(i)) for i in range(5)]

    async def scenario(h: Harness) -> None:
        redis_server.stop()
        outcomes = await asyncio.gather(*(h.publisher.publish(e) for e in events))
        assert outcomes == ["queued"] * 5
        assert h.failures() == 1  # one failed round trip for the whole burst
        assert h.spool.outbox.depth() == 5

    run(redis_server, tmp_path, scenario)


def test_redis_down_queues_quickly_then_flush_delivers_in_order_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [event(asset=f"T{i}", value=float(i)) for i in range(5)]

    async def scenario(h: Harness) -> None:
        # Redis up: the first event goes straight through.
        assert await h.publisher.publish(events[0]) == "published"
        redis_server.stop()

        started = time.monotonic()
        assert await h.publisher.publish(events[1]) == "queued"
        assert time.monotonic() - started < 2.0
        assert h.spool.outbox.depth() == 1
        assert h.spool.outbox.pending()
        assert h.failures() >= 1
        for ev in events[2:]:
            assert await h.publisher.publish(ev) == "queued"
        assert h.spool.outbox.depth() == 4
        assert h.counter("queued") == 4
        assert h.counter("published") == 1

        # Still down: a flush fails loudly and keeps everything.
        with pytest.raises((redis.RedisError, OSError)):
            h.publisher.flush_now()
        assert h.spool.outbox.depth() == 4

        redis_server.start()  # same port, AOF: events[0] is still in the stream
        sub = redis_server.client().pubsub()
        sub.subscribe(live_channel(SERVICE))
        assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
        assert h.publisher.flush_now() == 4
        live = [sub.get_message(timeout=2, ignore_subscribe_messages=True) for _ in range(4)]
        assert sub.get_message(timeout=0.1, ignore_subscribe_messages=True) is None
        sub.close()
        assert [orjson.loads(m["data"])["event_id"] for m in live if m] == [
            e.event_id for e in events[1:]
        ]
        assert h.counter("flushed") == 4
        assert h.spool.outbox.depth() == 0
        assert not h.spool.outbox.pending()
        assert h.publisher.flush_now() == 0  # nothing is sent twice

    run(redis_server, tmp_path, scenario)
    stored = stream_events(redis_server)
    assert [e["event_id"] for e in stored] == [e.event_id for e in events]


def test_unresponsive_redis_queues_within_the_timeout(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # A hung server (not a refused connection): the socket timeout bounds the wait.
    async def scenario(h: Harness) -> None:
        assert await h.publisher.publish(event()) == "published"  # pooled connection is open
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert await h.publisher.publish(event()) == "queued"
            assert time.monotonic() - started < 2.0
            assert h.spool.outbox.depth() == 1
            assert h.failures() == 1
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)

    run(redis_server, tmp_path, scenario)


def test_new_events_queue_behind_a_non_empty_outbox_even_with_redis_up(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [event(asset="T1", value=float(i)) for i in range(4)]

    async def scenario(h: Harness) -> None:
        redis_server.stop()
        assert await h.publisher.publish(events[0]) == "queued"
        assert await h.publisher.publish(events[1]) == "queued"
        redis_server.start()
        # Redis is reachable again, but older events are waiting: these must go behind them.
        assert h.redis_sync.ping()
        assert await h.publisher.publish(events[2]) == "queued"
        assert await h.publisher.publish(events[3]) == "queued"
        assert redis_server.client().xlen(STREAM) == 0
        assert h.spool.outbox.depth() == 4
        assert h.publisher.flush_now() == 4
        # Outbox empty again: the next event goes straight to Redis.
        last = event(asset="T1", value=99.0)
        events.append(last)
        assert await h.publisher.publish(last) == "published"

    run(redis_server, tmp_path, scenario)
    stored = stream_events(redis_server)
    assert [e["event_id"] for e in stored] == [e.event_id for e in events]
    assert [e["value"] for e in stored] == [0.0, 1.0, 2.0, 3.0, 99.0]


def test_background_loop_drains_the_outbox_once_redis_is_back(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [event(asset=f"T{i % 2}", value=float(i)) for i in range(6)]

    async def scenario(h: Harness) -> None:
        h.publisher.start()
        redis_server.stop()
        for ev in events:
            assert await h.publisher.publish(ev) == "queued"
        # The loop keeps trying while Redis is down, counting failures, losing nothing.
        before = h.failures()
        await asyncio.sleep(0.3)
        assert h.failures() > before
        assert h.spool.outbox.depth() == len(events)
        depth = h.metrics.registry.get_sample_value(
            "vigie_level_outbox_depth", {"service": SERVICE}
        )
        assert depth == len(events)

        await asyncio.to_thread(redis_server.start)
        await asyncio.to_thread(
            wait_until, lambda: not h.spool.outbox.pending(), 10, what="the outbox to drain"
        )
        assert h.counter("flushed") == len(events)
        await asyncio.sleep(0.2)  # a few more loop turns: nothing is re-sent

    run(redis_server, tmp_path, scenario)
    stored = stream_events(redis_server)
    assert [e["event_id"] for e in stored] == [e.event_id for e in events]


def test_stop_hands_queued_events_over(redis_server: RedisServer, tmp_path: Path) -> None:
    ev = event()

    async def scenario(h: Harness) -> None:
        # Queued while Redis is up (a pre-existing outbox entry), with no background loop.
        h.spool.outbox.append(event(asset="older").to_json())
        assert await h.publisher.publish(ev) == "queued"
        await h.publisher.stop()
        assert not h.spool.outbox.pending()

    run(redis_server, tmp_path, scenario)
    assert [e["asset_id"] for e in stream_events(redis_server)] == ["older", "T1"]


def test_outbox_survives_a_restart_of_the_publisher(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ev = event()

    async def queue_it(h: Harness) -> None:
        redis_server.stop()
        assert await h.publisher.publish(ev) == "queued"

    run(redis_server, tmp_path, queue_it)  # the process "exits" with the event on disk
    redis_server.start()

    async def drain(h: Harness) -> None:
        assert h.spool.outbox.pending()
        assert h.publisher.flush_now() == 1

    run(redis_server, tmp_path, drain)
    assert [e["event_id"] for e in stream_events(redis_server)] == [ev.event_id]


def test_level_event_json_round_trips() -> None:
    ev = event(level=Level.CRITIQUE)
    data = orjson.loads(ev.to_json())
    assert data["level"] == "CRITIQUE"
    assert data["observed_at"] == "2024-03-01T12:00:00Z"
    assert LevelEvent.model_validate(data) == ev
    with pytest.raises(ValueError, match="timezone"):
        LevelEvent.new(
            service=SERVICE, asset_id="T1", level="NORMAL", observed_at=datetime(2024, 1, 1),
            value=None, unit=None, threshold=None, model_version="v", message="m",
        )  # fmt: skip
