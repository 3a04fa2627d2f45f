"""What every Redis client of the runtime shares."""

import redis

#: What a Redis that is down, restarting or too slow raises: callers fall back (outbox, retry).
REDIS_ERRORS = (redis.RedisError, OSError)
