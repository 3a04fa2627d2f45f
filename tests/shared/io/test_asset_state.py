"""AssetStateStore against a real redis-server: shared, atomic, degrades to None."""

from __future__ import annotations

import threading

import pytest

from tests.support.servers import RedisServer
from vigie.io.asset_state import AssetStateStore, StateUnavailable


def test_get_update_and_isolation_between_assets(redis_server: RedisServer) -> None:
    store = AssetStateStore(redis_server.client(), "turbine-nox")
    assert store.get("T1") is None
    store.update("T1", lambda s: {"bias": 1.5, "n": 1})
    assert store.get("T1") == {"bias": 1.5, "n": 1}
    assert store.get("T2") is None
    other = AssetStateStore(redis_server.client(), "energy-anomaly")
    assert other.get("T1") is None  # one namespace per service


def test_concurrent_updates_are_not_lost(redis_server: RedisServer) -> None:
    store = AssetStateStore(redis_server.client(), "svc")

    def bump() -> None:
        for _ in range(50):
            store.update("A", lambda s: {"n": (s or {"n": 0})["n"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("A") == {"n": 200}  # compare-and-set: no update overwrote another


def test_unreachable_redis_is_not_mistaken_for_no_state(redis_server: RedisServer) -> None:
    store = AssetStateStore(redis_server.client(), "svc")
    store.update("A", lambda s: {"n": 1})
    redis_server.stop()
    with pytest.raises(StateUnavailable):
        store.get("A")
    with pytest.raises(StateUnavailable):
        store.update("A", lambda s: {"n": 2})


def test_an_update_is_two_round_trips_and_retries_a_conflict(redis_server: RedisServer) -> None:
    client = redis_server.client()
    store = AssetStateStore(client, "svc")
    store.update("A", lambda s: {"n": 1})  # loads the script

    def calls() -> dict[str, int]:
        stats: dict[str, dict[str, int]] = client.info("commandstats")
        return {name: int(v["calls"]) for name, v in stats.items()}

    before = calls()
    store.update("A", lambda s: {"n": (s or {"n": 0})["n"] + 1})
    after = calls()
    sent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # Our two round trips: GET, then EVALSHA (whose GET and SET run inside Redis); no WATCH.
    assert sent.pop("cmdstat_info") == 1
    assert sent == {"cmdstat_get": 2, "cmdstat_evalsha": 1, "cmdstat_set": 1}

    attempts: list[dict[str, int] | None] = []

    def change(state: dict[str, int] | None) -> dict[str, int]:
        attempts.append(state)
        if len(attempts) == 1:  # another worker writes between our read and our write
            AssetStateStore(redis_server.client(), "svc").update("A", lambda s: {"n": 10})
        return {"n": (state or {"n": 0})["n"] + 1}

    assert store.update("A", change) == {"n": 11}
    assert attempts == [{"n": 2}, {"n": 10}] and store.get("A") == {"n": 11}
