"""What every Redis client of the runtime shares."""

from typing import Any

import redis
import redis.asyncio as aioredis

#: What a Redis that is down, restarting or too slow raises: callers fall back (outbox, retry).
REDIS_ERRORS = (redis.RedisError, OSError)


def clients(url: str, timeout_s: float) -> tuple[aioredis.Redis, redis.Redis]:
    """An asyncio and a blocking client of ``url``, both giving up after ``timeout_s``."""
    kw: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    return aioredis.Redis.from_url(url, **kw), redis.Redis.from_url(url, **kw)
