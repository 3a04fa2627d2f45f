"""Small per-asset state of a service, shared by every worker and replica through Redis.

For what a service learns while it runs, e.g. the online correction of an emissions model
recalibrated against analyser values. Values are JSON objects under
``vigie:state:<service>:<asset_id>``; updates are optimistic read-modify-writes: read, compute,
then one Lua script that writes the new value only if the stored one is still what was read
(else read again), so two workers learning at once do not overwrite each other. Two round trips
per update, where ``WATCH``/``MULTI``/``EXEC`` took three. When Redis is unreachable, reads and
updates raise :class:`StateUnavailable`, so a service can tell "nothing learned yet" (``None``)
from "cannot know now" and say which one it served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis

log = logging.getLogger(__name__)

State = dict[str, Any]


class StateUnavailable(Exception):
    """Redis could not be reached; the message says why."""


#: KEYS[1]: the state; ARGV[1]: what was read ("" when nothing), ARGV[2]: the new value.
#: 1 when written, 0 when the state changed since it was read.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
_MAX_ATTEMPTS = 100


class AssetStateStore:
    def __init__(self, client: redis.Redis, service: str) -> None:
        self._redis = client
        self._prefix = f"vigie:state:{service}:"
        self._compare_and_set = client.register_script(_COMPARE_AND_SET)

    def key(self, asset_id: str) -> str:
        return self._prefix + asset_id

    def get(self, asset_id: str) -> State | None:
        """The state of ``asset_id``; ``None`` when nothing was stored yet."""
        try:
            raw = self._redis.get(self.key(asset_id))
        except (redis.RedisError, OSError) as exc:
            log.warning("state of %s unavailable (redis: %s)", asset_id, exc)
            raise StateUnavailable(str(exc)) from exc
        return None if raw is None else dict(orjson.loads(raw))

    def update(self, asset_id: str, change: Callable[[State | None], State]) -> State:
        """Apply ``change`` to the current state atomically; returns the new state. ``change``
        may run more than once (when another worker wrote in between): no side effects."""
        key = self.key(asset_id)
        try:
            for _ in range(_MAX_ATTEMPTS):
                raw = self._redis.get(key)
                result = change(None if raw is None else dict(orjson.loads(raw)))
                if self._compare_and_set(keys=[key], args=[raw or b"", orjson.dumps(result)]):
                    return result
        except (redis.RedisError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc
        raise StateUnavailable(f"state of {asset_id} changed {_MAX_ATTEMPTS} times while updating")
