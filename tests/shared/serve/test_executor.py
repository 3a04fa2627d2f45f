"""CallThread: model calls off the event loop, handed back in batches."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from vigie.serve.executor import CallThread, MicroBatcher, ModelCalls

REQUEST = contextvars.ContextVar("request", default="none")


@contextmanager
def started(thread: CallThread) -> Iterator[CallThread]:
    """``thread`` started, and stopped afterwards whatever happened."""
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def test_results_come_back_to_each_caller_off_the_loop_thread() -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        with started(CallThread()) as calls:
            results = await asyncio.gather(
                *(calls.run(lambda i=i: (i * i, threading.get_ident())) for i in range(50))
            )
        assert [r for r, _ in results] == [i * i for i in range(50)]
        assert {t for _, t in results} != {loop_thread}
        assert len({t for _, t in results}) == 1  # one thread, calls in arrival order

    asyncio.run(main())


def test_a_burst_is_run_and_handed_back_in_few_rounds() -> None:
    async def main() -> CallThread:
        gate = threading.Event()
        with started(CallThread()) as calls:
            # The first call holds the thread while 99 more queue up behind it.
            first = asyncio.ensure_future(calls.run(gate.wait, 5))
            await asyncio.sleep(0.05)
            rest = [asyncio.ensure_future(calls.run(time.monotonic)) for _ in range(99)]
            gate.set()
            await asyncio.gather(first, *rest)
        return calls

    calls = asyncio.run(main())
    assert calls.calls == 100
    assert calls.wakeups <= 3


def test_exceptions_reach_their_caller_only() -> None:
    def boom() -> None:
        raise ValueError("bad row")

    async def main() -> None:
        with started(CallThread()) as calls:
            bad, good = await asyncio.gather(
                calls.run(boom), calls.run(lambda: "ok"), return_exceptions=True
            )
        assert isinstance(bad, ValueError) and str(bad) == "bad row"
        assert good == "ok"

    asyncio.run(main())


def test_calls_run_in_the_callers_context() -> None:
    async def one(name: str, calls: CallThread) -> str:
        REQUEST.set(name)
        return await calls.run(REQUEST.get)

    async def main() -> None:
        with started(CallThread()) as calls:
            seen = await asyncio.gather(*(one(f"req-{i}", calls) for i in range(10)))
        assert seen == [f"req-{i}" for i in range(10)]

    asyncio.run(main())


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    async def main() -> None:
        with started(CallThread()) as calls:
            slow = asyncio.ensure_future(calls.run(time.sleep, 0.2))
            after = asyncio.ensure_future(calls.run(lambda: "after"))
            await asyncio.sleep(0.05)
            slow.cancel()
            assert await after == "after"

    asyncio.run(main())


def test_run_before_start_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(CallThread("x").run(lambda: None))


def _where() -> int:
    return threading.get_ident()


def test_cheap_small_calls_run_inline_once_measured() -> None:
    async def main() -> tuple[list[int], ModelCalls]:
        calls = ModelCalls(CallThread(), budget_s=0.01, max_inline_rows=8)
        with started(calls.thread):
            first = await calls.run(1, _where)  # not measured yet: on the thread
            then = [await calls.run(1, _where) for _ in range(5)]
            big = await calls.run(9, _where)  # over max_inline_rows: on the thread
        return [first, *then, big], calls

    (first, *then, big), calls = asyncio.run(main())
    loop_thread = threading.get_ident()
    assert first != loop_thread and big != loop_thread
    assert then == [loop_thread] * 5 and calls.inline_calls == 5
    assert calls.mean_small_s is not None and calls.mean_small_s < 0.01


def test_slow_calls_and_io_services_stay_on_the_thread() -> None:
    async def main(calls: ModelCalls, fn: Callable[[], int]) -> set[int]:
        with started(calls.thread):
            return {await calls.run(1, fn) for _ in range(5)}

    def slow() -> int:
        time.sleep(0.003)
        return threading.get_ident()

    loop_thread = threading.get_ident()
    slow_calls = ModelCalls(CallThread(), budget_s=0.001, max_inline_rows=8)
    assert loop_thread not in asyncio.run(main(slow_calls, slow))
    io_calls = ModelCalls(CallThread(), budget_s=1.0, max_inline_rows=8, inline=False)
    assert loop_thread not in asyncio.run(main(io_calls, _where))
    off = ModelCalls(CallThread(), budget_s=0.0, max_inline_rows=8)
    assert loop_thread not in asyncio.run(main(off, _where))
    assert slow_calls.inline_calls == io_calls.inline_calls == off.inline_calls == 0


def test_a_call_that_turns_slow_goes_back_to_the_thread() -> None:
    delay = [0.0]

    def work() -> int:
        time.sleep(delay[0])
        return threading.get_ident()

    async def main() -> list[int]:
        calls = ModelCalls(CallThread(), budget_s=0.002, max_inline_rows=1, smoothing=0.5)
        with started(calls.thread):
            seen = [await calls.run(1, work) for _ in range(3)]  # cheap: inline after the first
            delay[0] = 0.01
            seen += [await calls.run(1, work) for _ in range(6)]
        return seen

    seen = asyncio.run(main())
    loop_thread = threading.get_ident()
    assert seen[1:3] == [loop_thread, loop_thread]
    assert seen[-1] != loop_thread  # the running mean crossed the budget


class Scorer:
    """A predict_batch that records the batches it was given."""

    def __init__(self, fail_all: bool = False) -> None:
        self.batches: list[list[tuple[Any, ...]]] = []
        self.fail_all = fail_all

    def __call__(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        self.batches.append(calls)
        if self.fail_all:
            raise RuntimeError("model down")
        return [ValueError(f"bad {a}") if a == "bad" else [f"{a}:{n}"] for a, n in calls]


async def _batched(scorer: Scorer, window_s: float, max_rows: int, calls: list[Any]) -> list[Any]:
    with started(CallThread()) as thread:
        batcher = MicroBatcher(thread, scorer, window_s=window_s, max_rows=max_rows)
        return await asyncio.gather(
            *(batcher.run(n, a, n) for a, n in calls), return_exceptions=True
        )


def test_calls_within_the_window_are_scored_together() -> None:
    scorer = Scorer()
    out = asyncio.run(_batched(scorer, 0.05, 64, [("A", 1), ("bad", 1), ("C", 2)]))
    assert scorer.batches == [[("A", 1), ("bad", 1), ("C", 2)]]
    assert out[0] == ["A:1"] and out[2] == ["C:2"]
    assert isinstance(out[1], ValueError) and str(out[1]) == "bad bad"  # its own error only


def test_max_rows_sends_the_batch_without_waiting_the_window() -> None:
    scorer = Scorer()
    started = time.monotonic()
    out = asyncio.run(_batched(scorer, 30.0, 4, [("A", 1), ("B", 3)]))
    assert time.monotonic() - started < 5  # not the 30 s window
    assert scorer.batches == [[("A", 1), ("B", 3)]]  # 4 rows: sent at once
    assert out == [["A:1"], ["B:3"]]


def test_a_lone_call_waits_the_window_then_goes_alone() -> None:
    scorer = Scorer()
    started = time.monotonic()
    assert asyncio.run(_batched(scorer, 0.05, 64, [("A", 1)])) == [["A:1"]]
    assert time.monotonic() - started >= 0.05 and scorer.batches == [[("A", 1)]]


def test_a_failing_batch_fails_each_of_its_calls() -> None:
    out = asyncio.run(_batched(Scorer(fail_all=True), 0.01, 64, [("A", 1), ("B", 1)]))
    assert all(isinstance(e, RuntimeError) and str(e) == "model down" for e in out)
