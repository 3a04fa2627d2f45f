"""CallThread: model calls off the event loop, handed back in batches."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from vigie.executor import CallThread

REQUEST = contextvars.ContextVar("request", default="none")


def test_results_come_back_to_each_caller_off_the_loop_thread() -> None:
    async def main() -> None:
        calls = CallThread()
        calls.start()
        loop_thread = threading.get_ident()
        try:
            results = await asyncio.gather(
                *(calls.run(lambda i=i: (i * i, threading.get_ident())) for i in range(50))
            )
        finally:
            calls.stop()
        assert [r for r, _ in results] == [i * i for i in range(50)]
        assert {t for _, t in results} != {loop_thread}
        assert len({t for _, t in results}) == 1  # one thread, calls in arrival order

    asyncio.run(main())


def test_a_burst_is_run_and_handed_back_in_few_rounds() -> None:
    async def main() -> CallThread:
        calls = CallThread()
        calls.start()
        gate = threading.Event()
        try:
            # The first call holds the thread while 99 more queue up behind it.
            first = asyncio.ensure_future(calls.run(gate.wait, 5))
            await asyncio.sleep(0.05)
            rest = [asyncio.ensure_future(calls.run(time.monotonic)) for _ in range(99)]
            gate.set()
            await asyncio.gather(first, *rest)
        finally:
            calls.stop()
        return calls

    calls = asyncio.run(main())
    assert calls.calls == 100
    assert calls.wakeups <= 3


def test_exceptions_reach_their_caller_only() -> None:
    def boom() -> None:
        raise ValueError("bad row")

    async def main() -> None:
        calls = CallThread()
        calls.start()
        try:
            bad, good = await asyncio.gather(
                calls.run(boom), calls.run(lambda: "ok"), return_exceptions=True
            )
        finally:
            calls.stop()
        assert isinstance(bad, ValueError) and str(bad) == "bad row"
        assert good == "ok"

    asyncio.run(main())


def test_calls_run_in_the_callers_context() -> None:
    async def one(name: str, calls: CallThread) -> str:
        REQUEST.set(name)
        return await calls.run(REQUEST.get)

    async def main() -> None:
        calls = CallThread()
        calls.start()
        try:
            seen = await asyncio.gather(*(one(f"req-{i}", calls) for i in range(10)))
        finally:
            calls.stop()
        assert seen == [f"req-{i}" for i in range(10)]

    asyncio.run(main())


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    async def main() -> None:
        calls = CallThread()
        calls.start()
        try:
            slow = asyncio.ensure_future(calls.run(time.sleep, 0.2))
            after = asyncio.ensure_future(calls.run(lambda: "after"))
            await asyncio.sleep(0.05)
            slow.cancel()
            assert await after == "after"
        finally:
            calls.stop()

    asyncio.run(main())


def test_run_before_start_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(CallThread("x").run(lambda: None))
