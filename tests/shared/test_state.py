"""AssetStateStore against a real redis-server: shared, atomic, degrades to None."""

from __future__ import annotations

import threading

import pytest

from tests.support.servers import RedisServer
from vigie.state import AssetStateStore, StateUnavailable


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
    assert store.get("A") == {"n": 200}  # WATCH/MULTI: no update overwrote another


def test_unreachable_redis_is_not_mistaken_for_no_state(redis_server: RedisServer) -> None:
    store = AssetStateStore(redis_server.client(), "svc")
    store.update("A", lambda s: {"n": 1})
    redis_server.stop()
    with pytest.raises(StateUnavailable):
        store.get("A")
    with pytest.raises(StateUnavailable):
        store.update("A", lambda s: {"n": 2})
