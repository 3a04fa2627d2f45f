"""Small per-asset state of a service, shared by every worker and replica through Redis.

For what a service learns while it runs, e.g. the online correction of an emissions model
recalibrated against analyser values. Values are JSON objects under
``vigie:state:<service>:<asset_id>``; updates are read-modify-write transactions (``WATCH``), so two
workers learning at once do not overwrite each other. When Redis is unreachable, reads and
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


class AssetStateStore:
    def __init__(self, client: redis.Redis, service: str) -> None:
        self._redis = client
        self._prefix = f"vigie:state:{service}:"

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
        """Apply ``change`` to the current state atomically; returns the new state."""
        key = self.key(asset_id)
        result: State = {}

        def transaction(pipe: Any) -> None:
            nonlocal result
            raw = pipe.get(key)
            result = change(None if raw is None else dict(orjson.loads(raw)))
            pipe.multi()
            pipe.set(key, orjson.dumps(result))

        try:
            self._redis.transaction(transaction, key)
        except (redis.RedisError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc
        return result
