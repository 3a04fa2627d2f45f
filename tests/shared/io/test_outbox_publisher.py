"""OutboxPublisher on a real redis-server and the real SQLite outbox (:class:`LocalOutbox`):
batches in order with the stream entry format, the live channel, approximate trimming, backoff
while Redis is down, draining once it restarts, wake-ups, a clean stop, and two workers draining
one outbox without repeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from tests.support.servers import RedisServer, wait_until
from vigie.io.outbox import LocalOutbox, Spool
from vigie.io.outbox_publisher import OutboxPublisher
from vigie.io.streams import StreamTarget, StreamWriter, SyncStreamWriter

TARGET = StreamTarget("test:events", "test:events:live", maxlen=10_000)
TIMEOUT_S = 0.5


class Drainer:
    """An OutboxPublisher over a spool file, with what its hooks saw."""

    def __init__(self, url: str, spool_file: Path, **kw: Any) -> None:
        timeouts: dict[str, Any] = {
            "socket_timeout": TIMEOUT_S,
            "socket_connect_timeout": TIMEOUT_S,
        }
        self.client = aioredis.Redis.from_url(url, **timeouts)
        self.sync_client = redis.Redis.from_url(url, **timeouts)
        self.outbox: LocalOutbox = Spool(spool_file).outbox
        self.sent: list[int] = []
        self.failures: list[BaseException] = []
        self.attempts = 0
        target = kw.pop("target", TARGET)
        options: dict[str, Any] = {"interval_s": 0.02, "retry_s": (0.05, 0.4), **kw}
        self.publisher = OutboxPublisher(
            self.outbox,
            StreamWriter(self.client, target),
            name="test events",
            sync_writer=SyncStreamWriter(self.sync_client, target),
            on_sent=self.sent.append,
            on_failure=self.failures.append,
            after_attempt=self._attempted,
            **options,
        )

    def _attempted(self) -> None:
        self.attempts += 1

    async def close(self) -> None:
        await self.publisher.stop(last_drain=False)
        await self.client.aclose()
        self.sync_client.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def run_with_drainer(
    scenario: Callable[[Drainer], Awaitable[None]], url: str, spool_file: Path, **kw: Any
) -> None:
    """``scenario(Drainer(url, spool_file, **kw))`` in an event loop; the drainer is closed
    afterwards, whatever happened."""

    async def main() -> None:
        drainer = Drainer(url, spool_file, **kw)
        try:
            await scenario(drainer)
        finally:
            await drainer.close()

    run(main)


def queue(outbox: LocalOutbox, n: int, prefix: str = "e") -> list[bytes]:
    payloads = [f'{{"n": "{prefix}{i:04d}"}}'.encode() for i in range(n)]
    for p in payloads:
        outbox.append(p)
    return payloads


def stream(server: RedisServer, key: str = TARGET.stream) -> list[bytes]:
    entries = server.client().xrange(key)
    for _id, fields in entries:
        assert set(fields) == {b"event"}  # one field per entry, the event JSON
    return [fields[b"event"] for _id, fields in entries]


def test_drain_sends_batches_in_order_to_the_stream_and_the_channel(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    sub = redis_server.client().pubsub()
    sub.subscribe(TARGET.channel)
    assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]

    async def scenario(d: Drainer) -> None:
        payloads = queue(d.outbox, 10)
        assert await d.publisher.drain() == 10
        assert d.sent == [4, 4, 2]  # batches of at most 4, each hook call once it went
        assert not d.outbox.pending() and d.outbox.depth() == 0
        assert await d.publisher.drain() == 0  # nothing goes twice
        assert stream(redis_server) == payloads

    run_with_drainer(scenario, redis_server.url, tmp_path / "spool.sqlite", batch=4)
    live = [sub.get_message(timeout=2, ignore_subscribe_messages=True) for _ in range(10)]
    assert [m["data"] for m in live if m] == stream(redis_server)
    sub.close()


def test_the_stream_is_trimmed_approximately_to_maxlen(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    small = StreamTarget("test:small", "test:small:live", maxlen=100)

    async def scenario(d: Drainer) -> None:
        queue(d.outbox, 500)
        assert await d.publisher.drain() == 500

    run_with_drainer(scenario, redis_server.url, tmp_path / "spool.sqlite", target=small)
    kept = stream(redis_server, small.stream)
    # MAXLEN ~: whole macro-nodes (100 entries) are dropped, so up to 200 stay, the newest.
    assert 100 <= len(kept) <= 200
    assert kept[-1] == b'{"n": "e0499"}'


def test_redis_down_backs_off_then_the_loop_drains_in_order_once_it_restarts(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(d: Drainer) -> None:
        before = queue(d.outbox, 3, "before")
        redis_server.stop()
        d.publisher.start()
        for _ in range(20):  # wake-ups while Redis fails do not hurry the retries
            d.publisher.wake()
            await asyncio.sleep(0.05)
        # 1 s at interval 0.01 would be ~100 attempts; backing off 0.05, 0.1, 0.2, 0.4, ...
        assert 3 <= len(d.failures) <= 8, len(d.failures)
        assert all(isinstance(e, (redis.RedisError, OSError)) for e in d.failures)
        assert d.attempts == len(d.failures)  # the after-attempt hook, once per attempt
        assert d.outbox.depth() == 3 and d.sent == []
        during = queue(d.outbox, 2, "during")
        await asyncio.to_thread(redis_server.start)  # AOF: same port, same data
        await asyncio.to_thread(
            wait_until, lambda: not d.outbox.pending(), 10, what="the outbox to drain"
        )
        assert stream(redis_server) == [*before, *during]
        after = queue(d.outbox, 1, "after")
        d.publisher.wake()
        await asyncio.to_thread(wait_until, lambda: not d.outbox.pending(), 5, what="the new entry")
        await asyncio.sleep(0.1)  # a few more turns: nothing is sent again
        assert stream(redis_server) == [*before, *during, *after]
        assert sum(d.sent) == 6

    run_with_drainer(scenario, redis_server.url, tmp_path / "spool.sqlite", interval_s=0.01)


def test_a_wake_up_drains_without_waiting_for_the_interval(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(d: Drainer) -> None:
        d.publisher.start()
        await asyncio.sleep(0.05)  # the loop now waits (up to 30 s) for a wake-up
        payloads = queue(d.outbox, 2)
        started = time.monotonic()
        d.publisher.wake()
        await asyncio.to_thread(
            wait_until, lambda: not d.outbox.pending(), 5, what="the outbox to drain"
        )
        assert time.monotonic() - started < 2
        assert stream(redis_server) == payloads

    run_with_drainer(scenario, redis_server.url, tmp_path / "spool.sqlite", interval_s=30)


def test_stop_hands_what_is_queued_over_and_keeps_it_when_redis_is_down(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    spool_file = tmp_path / "spool.sqlite"

    async def handed_over() -> None:
        d = Drainer(redis_server.url, spool_file, interval_s=30)
        d.publisher.start()
        payloads = queue(d.outbox, 3)
        await d.publisher.stop()  # the loop was waiting: the last drain sends them
        assert stream(redis_server) == payloads
        await d.close()

    async def kept() -> None:
        d = Drainer(redis_server.url, spool_file, interval_s=30)
        d.publisher.start()
        queue(d.outbox, 2, "kept")
        redis_server.stop()
        started = time.monotonic()
        await d.publisher.stop()
        assert time.monotonic() - started < 3  # bounded by the client's timeout
        assert d.outbox.depth() == 2  # still on disk for the next start
        assert d.outbox.take(10) != []  # and not claimed by the stopped drainer
        d.outbox.release()
        await d.close()

    run(handed_over)
    run(kept)


def test_a_failed_batch_stays_queued_unclaimed_and_goes_with_the_blocking_drain(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(d: Drainer) -> None:
        payloads = queue(d.outbox, 5)
        redis_server.stop()
        with pytest.raises((redis.RedisError, OSError)):
            await d.publisher.drain()
        with pytest.raises((redis.RedisError, OSError)):
            d.publisher.drain_blocking()
        assert d.outbox.depth() == 5 and d.sent == []
        redis_server.start()
        assert d.publisher.drain_blocking() == 5
        assert stream(redis_server) == payloads

    run_with_drainer(scenario, redis_server.url, tmp_path / "spool.sqlite")


def test_two_workers_draining_one_outbox_send_each_entry_once_in_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    spool_file = tmp_path / "shared.sqlite"

    async def scenario() -> None:
        a = Drainer(redis_server.url, spool_file, batch=7, interval_s=0.001)
        b = Drainer(redis_server.url, spool_file, batch=7, interval_s=0.001)
        try:
            a.publisher.start()
            b.publisher.start()
            payloads: list[bytes] = []
            for i in range(30):  # both "workers" queue while both drain
                payloads += queue(a.outbox if i % 2 else b.outbox, 10, f"w{i:02d}-")
                a.publisher.wake()
                b.publisher.wake()
                await asyncio.sleep(0.005)
            await asyncio.to_thread(
                wait_until, lambda: not a.outbox.pending(), 10, what="the outbox to drain"
            )
            await asyncio.sleep(0.1)
            assert stream(redis_server) == payloads  # no repeat, none lost, queue order
            assert sum(a.sent) + sum(b.sent) == 300
        finally:
            await a.close()
            await b.close()

    run(scenario)
