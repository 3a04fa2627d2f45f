"""Spool: the SQLite outbox and idempotency fallback shared by the workers of one host."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from vigie.io.outbox import Spool


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool" / "svc.sqlite")


def rows(spool: Spool) -> list[bytes]:
    """Everything in the outbox, oldest first, without removing it."""
    db = spool._db
    return [bytes(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY seq")]


def test_new_spool_is_empty_and_has_no_marker(spool: Spool) -> None:
    assert spool.outbox_depth() == 0
    assert not spool.outbox_pending()
    assert not spool.marker.exists()


def test_outbox_keeps_order_across_appends(spool: Spool) -> None:
    payloads = [f"event-{i}".encode() for i in range(20)]
    for p in payloads:
        spool.outbox_append(p)
    assert spool.outbox_depth() == 20
    assert rows(spool) == payloads


def test_drain_publishes_in_order_and_empties(spool: Spool) -> None:
    payloads = [f"e{i}".encode() for i in range(7)]
    for p in payloads:
        spool.outbox_append(p)
    seen: list[bytes] = []
    sent = spool.outbox_drain(seen.extend)
    assert sent == 7
    assert seen == payloads
    assert spool.outbox_depth() == 0
    assert not spool.outbox_pending()
    # Nothing is left to publish a second time.
    assert spool.outbox_drain(seen.extend) == 0
    assert seen == payloads


def test_drain_in_several_batches_keeps_order(spool: Spool) -> None:
    payloads = [f"e{i}".encode() for i in range(10)]
    for p in payloads:
        spool.outbox_append(p)
    batches: list[list[bytes]] = []
    assert spool.outbox_drain(lambda b: batches.append(list(b)), batch=3) == 10
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [p for b in batches for p in b] == payloads
    assert not spool.outbox_pending()


def test_drain_with_exactly_a_full_batch_clears_the_marker(spool: Spool) -> None:
    for i in range(4):
        spool.outbox_append(str(i).encode())
    assert spool.outbox_drain(lambda _b: None, batch=4) == 4
    assert spool.outbox_depth() == 0
    assert not spool.outbox_pending()


def test_failing_publish_leaves_everything_queued_in_order(spool: Spool) -> None:
    payloads = [f"e{i}".encode() for i in range(5)]
    for p in payloads:
        spool.outbox_append(p)

    def broken(_batch: Sequence[bytes]) -> None:
        raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError):
        spool.outbox_drain(broken)
    assert rows(spool) == payloads
    assert spool.outbox_pending()

    # A later append still goes behind, and a working drain sends all of it in order.
    spool.outbox_append(b"late")
    seen: list[bytes] = []
    assert spool.outbox_drain(seen.extend) == 6
    assert seen == [*payloads, b"late"]


def test_failure_in_a_later_batch_keeps_the_rest_queued(spool: Spool) -> None:
    payloads = [f"e{i}".encode() for i in range(6)]
    for p in payloads:
        spool.outbox_append(p)
    calls: list[list[bytes]] = []

    def fail_second(batch: Sequence[bytes]) -> None:
        calls.append(list(batch))
        if len(calls) == 2:
            raise OSError("connection reset")

    with pytest.raises(OSError, match="reset"):
        spool.outbox_drain(fail_second, batch=2)
    # The first batch went out and is gone; the failed one and the rest are still queued.
    assert rows(spool) == payloads[2:]
    assert spool.outbox_pending()


def test_marker_present_iff_rows(spool: Spool) -> None:
    assert not spool.outbox_pending()
    spool.outbox_append(b"x")
    assert spool.outbox_pending()
    assert spool.marker.exists()
    spool.outbox_drain(lambda _b: None)
    assert not spool.outbox_pending()
    assert not spool.marker.exists()
    spool.outbox_append(b"y")
    assert spool.outbox_pending()


def test_two_instances_on_one_file_share_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    worker_a, worker_b = Spool(path), Spool(path)
    worker_a.outbox_append(b"from-a-1")
    worker_b.outbox_append(b"from-b-1")
    worker_a.outbox_append(b"from-a-2")
    assert worker_a.outbox_pending() and worker_b.outbox_pending()
    assert worker_a.outbox_depth() == worker_b.outbox_depth() == 3

    seen: list[bytes] = []
    assert worker_b.outbox_drain(seen.extend) == 3
    assert seen == [b"from-a-1", b"from-b-1", b"from-a-2"]
    assert worker_a.outbox_depth() == 0
    assert not worker_a.outbox_pending()
    assert worker_a.outbox_drain(seen.extend) == 0
    assert len(seen) == 3


def test_concurrent_drains_never_publish_an_entry_twice(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    spools = [Spool(path) for _ in range(2)]
    n = 300
    for i in range(n):
        spools[i % 2].outbox_append(f"{i:04d}".encode())

    published: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def publish(batch: Sequence[bytes]) -> None:
        time.sleep(0.002)  # widen the window in which another drain could interleave
        with lock:
            published.extend(batch)

    def drain(s: Spool) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                s.outbox_drain(publish, batch=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(spools[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(published) == len(set(published)), "an entry was published twice"
    assert not errors
    assert len(published) == n, "an entry was lost"
    # Each batch is taken under the lock, so the global order is the queue order.
    assert published == sorted(published)
    assert spools[0].outbox_depth() == 0
    assert not spools[1].outbox_pending()


# -- idempotency fallback -------------------------------------------------------------------


def test_idem_claim_get_put_delete(spool: Spool) -> None:
    assert spool.idem_get("k") is None
    assert spool.idem_claim("k", b"pending", ttl_s=60) is None  # claimed
    assert spool.idem_get("k") == b"pending"
    # A second claim does not overwrite; it returns what is there.
    assert spool.idem_claim("k", b"other", ttl_s=60) == b"pending"
    assert spool.idem_get("k") == b"pending"

    spool.idem_put("k", b"done", ttl_s=60)
    assert spool.idem_get("k") == b"done"
    assert spool.idem_claim("k", b"again", ttl_s=60) == b"done"

    spool.idem_delete("k")
    assert spool.idem_get("k") is None
    assert spool.idem_claim("k", b"fresh", ttl_s=60) is None
    assert spool.idem_get("k") == b"fresh"
    # Keys are independent.
    assert spool.idem_get("other-key") is None


def test_idem_records_are_shared_between_instances(tmp_path: Path) -> None:
    path = tmp_path / "idem.sqlite"
    a, b = Spool(path), Spool(path)
    assert a.idem_claim("k", b"a's claim", ttl_s=60) is None
    assert b.idem_claim("k", b"b's claim", ttl_s=60) == b"a's claim"


def test_idem_records_expire(spool: Spool) -> None:
    assert spool.idem_claim("k", b"short", ttl_s=0.05) is None
    assert spool.idem_get("k") == b"short"
    spool.idem_put("p", b"put", ttl_s=0.05)
    assert spool.idem_get("p") == b"put"
    time.sleep(0.1)
    assert spool.idem_get("k") is None
    assert spool.idem_get("p") is None
    # An expired claim no longer blocks a new one.
    assert spool.idem_claim("k", b"new", ttl_s=60) is None
    assert spool.idem_get("k") == b"new"


def _open_spool(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        Spool(Path(path))
        results.put("ok")
    except Exception as exc:  # reported to the parent, asserted there
        results.put(repr(exc))


def test_workers_forked_together_all_open_a_new_spool(tmp_path: Path) -> None:
    """gunicorn forks the workers of a service at once and each opens the same new outbox file;
    switching it to WAL used to fail one of them with 'database is locked', and gunicorn then
    stopped the whole service (seen in CI)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = tmp_path / f"spool-{attempt}.sqlite"
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [
            ctx.Process(target=_open_spool, args=(str(path), barrier, results)) for _ in range(8)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert outcomes == ["ok"] * 8, outcomes
