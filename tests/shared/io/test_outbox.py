"""Spool: the SQLite outbox and idempotency fallback shared by the workers of one host.

The outbox (``spool.outbox``) through its :class:`~vigie.io.outbox_publisher.Outbox` protocol:
entries come out oldest first, leave only when marked sent, and one drainer at a time holds
them, across instances, threads and processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vigie.io.outbox import LocalOutbox, Spool


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool" / "svc.sqlite")


def rows(spool: Spool) -> list[bytes]:
    """Everything in the outbox, oldest first, without removing it."""
    return [bytes(r[0]) for r in spool.db.execute("SELECT payload FROM outbox ORDER BY seq")]


def fill(outbox: LocalOutbox, n: int, prefix: str = "e") -> list[bytes]:
    payloads = [f"{prefix}{i:04d}".encode() for i in range(n)]
    for p in payloads:
        outbox.append(p)
    return payloads


def drain(outbox: LocalOutbox, batch: int = 500) -> list[bytes]:
    """Take, "send", mark sent until the outbox gives nothing; what was sent, in order."""
    sent: list[bytes] = []
    while entries := outbox.take(batch):
        sent.extend(p for _i, p in entries)
        outbox.mark_sent([i for i, _p in entries])
    return sent


def test_new_spool_is_empty_and_has_no_marker(spool: Spool) -> None:
    assert spool.outbox.depth() == 0
    assert not spool.outbox.pending()
    assert not spool.outbox.marker.exists()
    assert spool.outbox.take(10) == []


def test_outbox_keeps_order_across_appends(spool: Spool) -> None:
    payloads = fill(spool.outbox, 20)
    assert spool.outbox.depth() == 20
    assert rows(spool) == payloads


def test_take_gives_the_oldest_in_order_and_mark_sent_removes_only_those(spool: Spool) -> None:
    payloads = fill(spool.outbox, 7)
    entries = spool.outbox.take(3)
    assert [p for _i, p in entries] == payloads[:3]
    ids = [i for i, _p in entries]
    assert ids == sorted(ids)
    spool.outbox.mark_sent(ids)
    assert rows(spool) == payloads[3:]
    assert spool.outbox.pending()  # the rest is still waiting
    assert drain(spool.outbox) == payloads[3:]
    assert spool.outbox.depth() == 0
    assert not spool.outbox.pending()
    assert drain(spool.outbox) == []  # nothing is left to send a second time


def test_drain_with_exactly_a_full_batch_clears_the_marker(spool: Spool) -> None:
    fill(spool.outbox, 4)
    spool.outbox.mark_sent([i for i, _p in spool.outbox.take(4)])
    assert spool.outbox.take(4) == []
    assert spool.outbox.depth() == 0
    assert not spool.outbox.pending()


def test_a_released_batch_stays_queued_in_order(spool: Spool) -> None:
    payloads = fill(spool.outbox, 5)
    assert len(spool.outbox.take(2)) == 2
    spool.outbox.release()  # the send failed
    assert rows(spool) == payloads
    assert spool.outbox.pending()
    # A later append still goes behind, and a working drain sends all of it in order.
    spool.outbox.append(b"late")
    assert drain(spool.outbox, batch=2) == [*payloads, b"late"]


def test_marker_present_iff_rows(spool: Spool) -> None:
    assert not spool.outbox.pending()
    spool.outbox.append(b"x")
    assert spool.outbox.pending()
    assert spool.outbox.marker.exists()
    drain(spool.outbox)
    assert not spool.outbox.pending()
    assert not spool.outbox.marker.exists()
    spool.outbox.append(b"y")
    assert spool.outbox.pending()


def test_an_append_while_the_last_batch_is_in_flight_keeps_the_marker(spool: Spool) -> None:
    fill(spool.outbox, 2)
    entries = spool.outbox.take(10)
    spool.outbox.append(b"while sending")  # a request that saw the marker queues behind
    spool.outbox.mark_sent([i for i, _p in entries])
    assert spool.outbox.pending()
    assert drain(spool.outbox) == [b"while sending"]


def test_two_instances_on_one_file_share_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    worker_a, worker_b = Spool(path).outbox, Spool(path).outbox
    worker_a.append(b"from-a-1")
    worker_b.append(b"from-b-1")
    worker_a.append(b"from-a-2")
    assert worker_a.pending() and worker_b.pending()
    assert worker_a.depth() == worker_b.depth() == 3

    assert drain(worker_b) == [b"from-a-1", b"from-b-1", b"from-a-2"]
    assert worker_a.depth() == 0
    assert not worker_a.pending()
    assert drain(worker_a) == []


def test_one_drainer_at_a_time_across_instances_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "claim.sqlite"
    a, b = Spool(path).outbox, Spool(path).outbox
    payloads = fill(a, 4)
    first = a.take(2)
    assert [p for _i, p in first] == payloads[:2]
    # While a's batch is in flight nobody else takes anything, not even the entries after it.
    assert b.take(10) == []
    other_thread: list[Any] = []
    thread = threading.Thread(target=lambda: other_thread.append(a.take(10)))
    thread.start()
    thread.join(timeout=10)
    assert other_thread == [[]]
    a.mark_sent([i for i, _p in first])
    assert [p for _i, p in b.take(10)] == payloads[2:]
    b.release()
    assert drain(a) == payloads[2:]


def _take_and_die(path: str) -> None:
    taken = Spool(Path(path)).outbox.take(10)
    os._exit(0 if len(taken) == 3 else 1)  # dies holding the claim, without marking anything


def test_a_drainer_that_dies_mid_batch_leaves_it_queued_and_unclaimed(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    outbox = Spool(path).outbox
    payloads = fill(outbox, 3)
    child = multiprocessing.get_context("fork").Process(target=_take_and_die, args=(str(path),))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert drain(outbox) == payloads  # at-least-once: sent again, in order


def test_concurrent_drains_never_send_an_entry_twice(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    outboxes = [Spool(path).outbox for _ in range(2)]
    n = 300
    for i in range(n):
        outboxes[i % 2].append(f"{i:04d}".encode())

    published: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def drainer(outbox: LocalOutbox) -> None:
        try:
            barrier.wait()
            deadline = time.monotonic() + 20
            while outbox.pending() and time.monotonic() < deadline:
                entries = outbox.take(7)
                if not entries:  # another drainer holds the claim
                    time.sleep(0.001)
                    continue
                time.sleep(0.002)  # widen the window in which another drain could interleave
                with lock:
                    published.extend(p for _i, p in entries)
                outbox.mark_sent([i for i, _p in entries])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drainer, args=(outboxes[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(published) == len(set(published)), "an entry was sent twice"
    assert len(published) == n, "an entry was lost"
    # Each batch is taken under the claim, so the global order is the queue order.
    assert published == sorted(published)
    assert outboxes[0].depth() == 0
    assert not outboxes[1].pending()


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
