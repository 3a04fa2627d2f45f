"""Level events (design.md section 3): one per ``(service, asset_id)`` per predict call.

Durable path: Redis Stream ``vigie:levels``; each entry has one field, ``event``, holding the event
JSON. Live path: pub/sub channel ``vigie:levels:<service>``, same JSON. Both are written by one
Lua script (:mod:`vigie.io.streams`, atomic like MULTI/EXEC) in one round trip; the events of
requests answered together (see :mod:`vigie.serve.executor`) share that round trip, so a client
waits for one round trip however busy the worker is, and Redis sees one command per burst instead
of four per request (a MULTI/EXEC costs the worker more CPU than the prediction).

When Redis cannot be reached the event goes to the local outbox (:class:`vigie.io.outbox.
LocalOutbox`) and the prediction still answers. While the outbox holds anything, newer events
queue behind it, so consumers see every asset's events in emission order; an
:class:`~vigie.io.outbox_publisher.OutboxPublisher` drains it in the background once Redis is
back. Delivery is at-least-once: a crash between "sent" and "removed from the outbox", or a Redis
that hangs past the timeout and then runs the script it had already received, can deliver an
event twice; ``event_id`` lets consumers drop such a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from vigie.contract.level_event import LevelEvent, live_channel
from vigie.io.outbox import Spool
from vigie.io.outbox_publisher import OutboxPublisher
from vigie.io.redis import REDIS_ERRORS
from vigie.io.streams import StreamTarget, StreamWriter, SyncStreamWriter
from vigie.obs.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: The longest wait between two attempts to drain the outbox while Redis fails.
MAX_RETRY_S = 2.0


@dataclass
class _Batch:
    """Events that go to Redis in one round trip, and whether they went."""

    sent: asyncio.Future[bool]
    payloads: list[bytes] = field(default_factory=list)


class LevelPublisher:
    """Publishes level events to Redis, falling back to the outbox; drains it in the background."""

    def __init__(
        self,
        service: str,
        *,
        redis_async: aioredis.Redis,
        redis_sync: redis.Redis,
        spool: Spool,
        metrics: ServiceMetrics,
        stream: str,
        stream_maxlen: int,
        flush_interval_s: float,
    ) -> None:
        self.service = service
        self._outbox = spool.outbox
        self._metrics = metrics
        target = StreamTarget(stream, live_channel(service), stream_maxlen)
        self._writer = StreamWriter(redis_async, target)
        self._collecting: _Batch | None = None  # the batch that events published now join
        self._sending: set[asyncio.Task[None]] = set()
        self._drainer = OutboxPublisher(
            spool.outbox,
            self._writer,
            name=f"{service} level events",
            interval_s=flush_interval_s,
            retry_s=(flush_interval_s, max(flush_interval_s, MAX_RETRY_S)),
            sync_writer=SyncStreamWriter(redis_sync, target),
            on_sent=self._flushed,
            on_failure=lambda _exc: metrics.publish_failures.labels(service).inc(),
            after_attempt=self._report_depth,
        )

    async def publish(self, event: LevelEvent) -> str:
        """Send one event; returns ``published`` or ``queued``. Never raises for Redis trouble."""
        payload = event.to_json()
        batch = self._collecting
        # The outbox is looked at when a batch opens: the events joining it were published
        # in the same moment.
        if batch is None and not self._outbox.pending():
            # Sent once the requests that are running now have published too.
            loop = asyncio.get_running_loop()
            batch = self._collecting = _Batch(loop.create_future())
            loop.call_soon(self._send_collected, batch)
        if batch is not None:
            batch.payloads.append(payload)
            # Shielded: a client that goes away must not cancel the others' round trip.
            if await asyncio.shield(batch.sent):
                return "published"
        await asyncio.to_thread(self._outbox.append, payload)
        self._metrics.level_events.labels(self.service, "queued").inc()
        self._drainer.wake()
        return "queued"

    def _send_collected(self, batch: _Batch) -> None:
        self._collecting = None
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        """One script call for the batch; its waiters learn whether it went (else they queue)."""
        try:
            await self._writer.write(batch.payloads)
        except REDIS_ERRORS as exc:
            self._metrics.publish_failures.labels(self.service).inc()
            log.warning("%d level events queued locally: redis: %s", len(batch.payloads), exc)
            batch.sent.set_result(False)
        except BaseException as exc:  # a bug, or cancelled at shutdown: the waiters queue theirs
            batch.sent.set_result(False)
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("level events not sent; queued locally")
            raise
        else:
            self._metrics.level_events.labels(self.service, "published").inc(len(batch.payloads))
            batch.sent.set_result(True)

    def _flushed(self, sent: int) -> None:
        self._metrics.level_events.labels(self.service, "flushed").inc(sent)
        log.info("flushed %d queued level events to redis", sent)

    def _report_depth(self) -> None:
        self._metrics.outbox_depth.labels(self.service).set(self._outbox.depth())

    def flush_now(self) -> int:
        """Drain the outbox synchronously (raises on Redis errors); returns events sent."""
        return self._drainer.drain_blocking()

    def start(self) -> None:
        """Drain the outbox in the background (when woken, or every ``flush_interval_s``)."""
        self._drainer.start()

    async def stop(self) -> None:
        if self._sending:  # round trips under way: their requests are waiting for them
            await asyncio.wait(list(self._sending), timeout=5)
        # Last chance to hand queued events over; what cannot go stays in the outbox on disk.
        await self._drainer.stop()
