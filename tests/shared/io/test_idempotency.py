"""IdempotencyStore against a real redis-server, with the spool fallback when Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.servers import RedisServer
from vigie.contract.errors import Conflict, Unprocessable
from vigie.io.idempotency import MAX_KEY_LENGTH, Claim, IdempotencyStore, StoredResponse
from vigie.io.outbox import Spool

SERVICE = "svc"
BODY = b'{"asset_id": "T1", "load": 0.8}'
RESPONSE = b'{"prediction_id": "p-1", "level": "NORMAL"}'


def run(
    redis_server: RedisServer,
    tmp_path: Path,
    scenario: Callable[[IdempotencyStore], Awaitable[None]],
) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(
            redis_server.url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        store = IdempotencyStore(SERVICE, client, Spool(tmp_path / "spool.sqlite"), ttl_s=3600)
        try:
            await scenario(store)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_begin_complete_then_replay(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        claim = await store.begin("alice", "key-1", BODY)
        assert isinstance(claim, Claim)
        assert not claim.local
        assert claim.key == "vigie:idem:svc:alice:key-1"
        await store.complete(claim, 201, RESPONSE)

        replay = await store.begin("alice", "key-1", BODY)
        assert replay == StoredResponse(201, RESPONSE)
        # Replaying does not consume the record.
        assert await store.begin("alice", "key-1", BODY) == StoredResponse(201, RESPONSE)

    run(redis_server, tmp_path, scenario)
    # The completed record lives in Redis with the configured TTL.
    client = redis_server.client()
    ttl = client.ttl("vigie:idem:svc:alice:key-1")
    assert 3500 < ttl <= 3600


def test_pending_claim_expires_on_its_own(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        assert isinstance(await store.begin("alice", "k", BODY), Claim)

    run(redis_server, tmp_path, scenario)
    ttl = redis_server.client().ttl("vigie:idem:svc:alice:k")
    assert 0 < ttl <= 60  # a crashed request does not hold the key for a day


def test_same_key_different_body_is_a_conflict(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        claim = await store.begin("alice", "key-1", BODY)
        assert isinstance(claim, Claim)
        await store.complete(claim, 200, RESPONSE)
        with pytest.raises(Conflict) as excinfo:
            await store.begin("alice", "key-1", BODY + b" ")
        assert excinfo.value.status == 409
        assert "different request body" in excinfo.value.message
        # The original is still there for the original body.
        assert await store.begin("alice", "key-1", BODY) == StoredResponse(200, RESPONSE)

    run(redis_server, tmp_path, scenario)


def test_begin_while_pending_is_a_conflict_with_retry_after(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        assert isinstance(await store.begin("alice", "key-1", BODY), Claim)
        with pytest.raises(Conflict) as excinfo:
            await store.begin("alice", "key-1", BODY)
        assert excinfo.value.status == 409
        assert excinfo.value.headers.get("Retry-After") == "1"
        assert "still being processed" in excinfo.value.message

    run(redis_server, tmp_path, scenario)


def test_abandon_allows_a_new_claim(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        claim = await store.begin("alice", "key-1", BODY)
        assert isinstance(claim, Claim)
        await store.abandon(claim)
        again = await store.begin("alice", "key-1", BODY)
        assert isinstance(again, Claim)
        await store.complete(again, 200, RESPONSE)
        assert await store.begin("alice", "key-1", BODY) == StoredResponse(200, RESPONSE)

    run(redis_server, tmp_path, scenario)


def test_keys_are_scoped_per_subject_and_service(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        alice = await store.begin("alice", "shared-key", BODY)
        assert isinstance(alice, Claim)
        await store.complete(alice, 200, RESPONSE)
        # Bob's identical key and body is his own first request, not a replay of Alice's.
        bob = await store.begin("bob", "shared-key", BODY)
        assert isinstance(bob, Claim)
        assert bob.key != alice.key
        # Another service sharing the Redis has its own namespace too.
        other = IdempotencyStore("other", store._redis, store._spool, ttl_s=3600)
        assert isinstance(await other.begin("alice", "shared-key", BODY), Claim)

    run(redis_server, tmp_path, scenario)


@pytest.mark.parametrize(
    ("subject_a", "key_a", "subject_b", "key_b"),
    [("plant", "north:k1", "plant:north", "k1"), ("a%3Ab", "k", "a:b", "k")],
)
def test_subject_and_key_cannot_be_confused(
    redis_server: RedisServer,
    tmp_path: Path,
    subject_a: str,
    key_a: str,
    subject_b: str,
    key_b: str,
) -> None:
    # A ":" (or an escape sequence) in a subject must not let one subject's key land on another
    # subject's record: that would replay another client's response to it.
    async def scenario(store: IdempotencyStore) -> None:
        first = await store.begin(subject_b, key_b, BODY)
        assert isinstance(first, Claim)
        await store.complete(first, 200, RESPONSE)
        second = await store.begin(subject_a, key_a, BODY)
        assert isinstance(second, Claim), "another subject's stored response was replayed"
        assert second.key != first.key

    run(redis_server, tmp_path, scenario)


@pytest.mark.parametrize(
    "key",
    ["", "x" * (MAX_KEY_LENGTH + 1), "bad\nkey", "tab\there", "nul\x00", "bell\x07"],
    ids=["empty", "too-long", "newline", "tab", "nul", "control"],
)
def test_invalid_keys_are_unprocessable(
    redis_server: RedisServer, tmp_path: Path, key: str
) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        with pytest.raises(Unprocessable) as excinfo:
            await store.begin("alice", key, BODY)
        err = excinfo.value
        assert err.status == 422
        assert err.details[0]["field"] == "header.Idempotency-Key"

    run(redis_server, tmp_path, scenario)
    assert redis_server.client().keys("vigie:idem:*") == []


def test_longest_valid_key_is_accepted(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        assert isinstance(await store.begin("alice", "k" * MAX_KEY_LENGTH, BODY), Claim)
        assert isinstance(await store.begin("alice", "é-ünïcode key", BODY), Claim)

    run(redis_server, tmp_path, scenario)


def test_redis_down_falls_back_to_the_spool_and_replays_after_restart(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        redis_server.stop()
        started = time.monotonic()
        claim = await store.begin("alice", "key-1", BODY)
        assert time.monotonic() - started < 2.0
        assert isinstance(claim, Claim)
        assert claim.local
        # While pending in the spool, a retry is told to wait.
        with pytest.raises(Conflict) as excinfo:
            await store.begin("alice", "key-1", BODY)
        assert excinfo.value.headers.get("Retry-After") == "1"
        await store.complete(claim, 201, RESPONSE)

        redis_server.start()
        # Redis knows nothing about the key; the spool is consulted first and answers.
        assert await store.begin("alice", "key-1", BODY) == StoredResponse(201, RESPONSE)
        with pytest.raises(Conflict):
            await store.begin("alice", "key-1", b"another body")
        # A fresh key goes to Redis again.
        fresh = await store.begin("alice", "key-2", BODY)
        assert isinstance(fresh, Claim)
        assert not fresh.local

    run(redis_server, tmp_path, scenario)
    client = redis_server.client()
    assert client.exists("vigie:idem:svc:alice:key-2") == 1
    assert client.exists("vigie:idem:svc:alice:key-1") == 0


def test_local_claim_abandoned_frees_the_key(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        redis_server.stop()
        claim = await store.begin("alice", "key-1", BODY)
        assert isinstance(claim, Claim) and claim.local
        await store.abandon(claim)
        redis_server.start()
        again = await store.begin("alice", "key-1", BODY)
        assert isinstance(again, Claim)
        assert not again.local

    run(redis_server, tmp_path, scenario)


def test_completion_falls_back_to_the_spool_when_redis_dies_mid_request(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        claim = await store.begin("alice", "key-1", BODY)
        assert isinstance(claim, Claim) and not claim.local
        redis_server.stop()
        await store.complete(claim, 200, RESPONSE)  # must not raise
        # Redis still down: the retry is answered from the spool.
        assert await store.begin("alice", "key-1", BODY) == StoredResponse(200, RESPONSE)

    run(redis_server, tmp_path, scenario)
