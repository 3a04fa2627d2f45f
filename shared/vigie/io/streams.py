"""Events to a Redis Stream and its live pub/sub channel, in one round trip per batch.

Every event the runtime publishes (level events, alerting's own events) takes both paths: the
durable one, a stream entry with ONE field ``event`` holding the event JSON (``XADD <stream>
MAXLEN ~ <maxlen> * event <json>``: the stream is trimmed approximately, Redis's cheap way), and
the live one, ``PUBLISH <channel> <json>``, same bytes. :data:`PUBLISH_SCRIPT` does both for
every event of a batch, in order, atomically (like MULTI/EXEC) and in one command: a worker
waits for one round trip however many events it sends, and Redis sees one command per burst
instead of four per event.

:class:`StreamWriter` (asyncio) and :class:`SyncStreamWriter` (blocking) send a batch; both raise
what the client raises (see :data:`vigie.io.redis.REDIS_ERRORS`) when the batch may not have
reached Redis, and the caller keeps it for another attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

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


@dataclass(frozen=True)
class StreamTarget:
    """Where a kind of event goes: its stream (trimmed to about ``maxlen`` entries) and its live
    channel."""

    stream: str
    channel: str
    maxlen: int


class StreamWriter:
    """Sends batches of event JSON to a :class:`StreamTarget` with an asyncio client."""

    def __init__(self, client: aioredis.Redis, target: StreamTarget) -> None:
        self.target = target
        # redis-py runs it by hash and loads it again when Redis lost it (NOSCRIPT, a restart).
        self._script = client.register_script(PUBLISH_SCRIPT)

    async def write(self, payloads: Sequence[bytes]) -> None:
        """Every payload to the stream and the channel, in order; raises when Redis may not have
        them (it may all the same: a Redis that runs the script after the client's timeout, so
        consumers drop a repeated event by its id)."""
        if payloads:
            t = self.target
            await self._script(keys=[t.stream, t.channel], args=[t.maxlen, *payloads])


class SyncStreamWriter:
    """:class:`StreamWriter` with a blocking client (for threads and synchronous callers)."""

    def __init__(self, client: redis.Redis, target: StreamTarget) -> None:
        self.target = target
        self._script = client.register_script(PUBLISH_SCRIPT)

    def write(self, payloads: Sequence[bytes]) -> None:
        """See :meth:`StreamWriter.write`."""
        if payloads:
            t = self.target
            self._script(keys=[t.stream, t.channel], args=[t.maxlen, *payloads])
