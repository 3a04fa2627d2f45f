"""Level events (design.md section 3): one per ``(service, asset_id)`` per predict call.

Durable path: Redis Stream ``vigie:levels``; each entry has one field, ``event``, holding the event
JSON. Live path: pub/sub channel ``vigie:levels:<service>``, same JSON. Both are written by one
Lua script (:data:`PUBLISH_SCRIPT`, atomic like MULTI/EXEC) in one round trip; the events of
requests answered together (see :mod:`vigie.serve.executor`) share that round trip, so a client
waits
for one round trip however busy the worker is, and Redis sees one command per burst instead of
four per request (a MULTI/EXEC costs the worker more CPU than the prediction).

When Redis cannot be reached the event goes to the local outbox (:class:`vigie.io.outbox.Spool`)
and the prediction still answers. While the outbox holds anything, newer events queue behind it,
so consumers see every asset's events in emission order; a background task drains it once Redis is
back. Delivery is at-least-once: a crash between "sent" and "removed from the outbox", or a Redis
that hangs past the timeout and then runs the transaction it had already received, can deliver an
event twice; ``event_id`` lets consumers drop such a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from vigie.contract.level_event import LevelEvent, live_channel
from vigie.io.outbox import Spool
from vigie.io.redis import REDIS_ERRORS
from vigie.obs.metrics import ServiceMetrics

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """Events that go to Redis in one round trip, and whether they went."""

    sent: asyncio.Future[bool]
    payloads: list[bytes] = field(default_factory=list)


#: KEYS: the stream, the live channel; ARGV: the stream's approximate max length, then one event
#: JSON per event. XADD then PUBLISH for each, in order; returns how many.
PUBLISH_SCRIPT = """
local maxlen = ARGV[1]
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i])
  redis.call('PUBLISH', KEYS[2], ARGV[i])
end
return #ARGV - 1
"""


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
        self._redis = redis_async
        self._redis_sync = redis_sync
        self._spool = spool
        self._metrics = metrics
        self._stream = stream
        self._maxlen = stream_maxlen
        self._channel = live_channel(service)
        self._flush_interval_s = flush_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._collecting: _Batch | None = None  # the batch that events published now join
        self._script = redis_async.register_script(PUBLISH_SCRIPT)
        self._script_sync = redis_sync.register_script(PUBLISH_SCRIPT)
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, event: LevelEvent) -> str:
        """Send one event; returns ``published`` or ``queued``. Never raises for Redis trouble."""
        payload = event.to_json()
        batch = self._collecting
        # The outbox is looked at when a batch opens: the events joining it were published
        # in the same moment.
        if batch is None and not self._spool.outbox_pending():
            # Sent once the requests that are running now have published too.
            loop = asyncio.get_running_loop()
            batch = self._collecting = _Batch(loop.create_future())
            loop.call_soon(self._send_collected, batch)
        if batch is not None:
            batch.payloads.append(payload)
            # Shielded: a client that goes away must not cancel the others' round trip.
            if await asyncio.shield(batch.sent):
                return "published"
        await asyncio.to_thread(self._spool.outbox_append, payload)
        self._metrics.level_events.labels(self.service, "queued").inc()
        self._wake.set()
        return "queued"

    def _send_collected(self, batch: _Batch) -> None:
        self._collecting = None
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        """One script call for the batch; its waiters learn whether it went (else they queue)."""
        try:
            await self._script(
                keys=[self._stream, self._channel], args=[self._maxlen, *batch.payloads]
            )
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

    def _send_batch(self, payloads: Sequence[bytes]) -> None:
        self._script_sync(keys=[self._stream, self._channel], args=[self._maxlen, *payloads])

    def flush_now(self) -> int:
        """Drain the outbox synchronously (raises on Redis errors); returns events sent."""
        sent = self._spool.outbox_drain(self._send_batch)
        if sent:
            self._metrics.level_events.labels(self.service, "flushed").inc(sent)
            log.info("flushed %d queued level events to redis", sent)
        return sent

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
            if not self._spool.outbox_pending():
                continue
            try:
                await asyncio.to_thread(self.flush_now)
            except REDIS_ERRORS as exc:
                self._metrics.publish_failures.labels(self.service).inc()
                log.debug("outbox flush postponed: redis: %s", exc)
            except Exception:
                log.exception("outbox flush failed")
            depth = await asyncio.to_thread(self._spool.outbox_depth)
            self._metrics.outbox_depth.labels(self.service).set(depth)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._sending:  # round trips under way: their requests are waiting for them
            await asyncio.wait(list(self._sending), timeout=5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Last chance to hand queued events over; what cannot go stays in the outbox on disk.
        if self._spool.outbox_pending():
            with contextlib.suppress(*REDIS_ERRORS):
                await asyncio.to_thread(self.flush_now)
