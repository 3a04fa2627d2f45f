"""``Idempotency-Key`` handling: a retried request gets the same answer and publishes nothing twice.

A key is scoped to the service and the token's subject. The first request claims it with a
``pending`` record (Redis ``SET NX``); when it completes, the record holds the response. A retry
with the same body gets that response back; the same key with another body is a 409, and so is a
retry while the first attempt is still running. If the first attempt fails, the claim is dropped so
the client may try again.

Redis is the shared store (all workers, all replicas). While it is unreachable, claims fall back
to the host-local spool, which is always consulted first so a retry sees a claim made there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from typing import cast

import orjson
import redis.asyncio as aioredis

from vigie.contract.errors import Conflict, Unprocessable, field_error
from vigie.io.outbox import Spool
from vigie.io.redis import REDIS_ERRORS

PENDING_TTL_S = 60
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


@dataclass(frozen=True)
class Claim:
    key: str
    fingerprint: str
    local: bool  # claimed in the spool because Redis was down


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IdempotencyStore:
    def __init__(self, service: str, redis: aioredis.Redis, spool: Spool, ttl_s: int) -> None:
        self._prefix = f"vigie:idem:{service}:"
        self._redis = redis
        self._spool = spool
        self._ttl_s = ttl_s

    def _key(self, subject: str, key: str) -> str:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise Unprocessable(
                f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
                details=[field_error(("header", "Idempotency-Key"), "invalid key", "value_error")],
            )
        # Escape ":" in the subject so ("a", "b:c") and ("a:b", "c") are different records.
        scoped = subject.replace("%", "%25").replace(":", "%3A")
        return f"{self._prefix}{scoped}:{key}"

    async def begin(self, subject: str, key: str, body: bytes) -> Claim | StoredResponse:
        """Claim ``key`` for this request, or return the response of the earlier identical one."""
        full_key = self._key(subject, key)
        fp = fingerprint(body)
        pending = orjson.dumps({"state": "pending", "fp": fp})
        existing = await asyncio.to_thread(self._spool.idem_get, full_key)
        local = False
        if existing is None:
            try:
                claimed = await self._redis.set(full_key, pending, nx=True, ex=PENDING_TTL_S)
                if not claimed:
                    existing = cast(bytes | None, await self._redis.get(full_key))
                    if existing is None:  # expired between SET and GET: claim again
                        return await self.begin(subject, key, body)
            except REDIS_ERRORS:
                local = True
                existing = await asyncio.to_thread(
                    self._spool.idem_claim, full_key, pending, PENDING_TTL_S
                )
        if existing is None:
            return Claim(full_key, fp, local)
        record = orjson.loads(existing)
        if record["fp"] != fp:
            raise Conflict(
                "Idempotency-Key was already used with a different request body; "
                "use a new key for a new request"
            )
        if record["state"] == "pending":
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        return StoredResponse(record["status"], record["body"].encode())

    async def complete(self, claim: Claim, status: int, body: bytes) -> None:
        record = orjson.dumps(
            {"state": "done", "fp": claim.fingerprint, "status": status, "body": body.decode()}
        )
        if not claim.local:
            try:
                await self._redis.set(claim.key, record, ex=self._ttl_s)
                return
            except REDIS_ERRORS:
                pass
        await asyncio.to_thread(self._spool.idem_put, claim.key, record, self._ttl_s)

    async def abandon(self, claim: Claim) -> None:
        if claim.local:
            await asyncio.to_thread(self._spool.idem_delete, claim.key)
            return
        # If Redis is down, the pending record expires by itself after PENDING_TTL_S.
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.delete(claim.key)
