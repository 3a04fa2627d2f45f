"""Where a worker runs its model calls: :class:`CallThread`, one thread off the event loop, and
:class:`ModelCalls`, which keeps the small, measured-cheap calls on the event loop itself.

A request hands its call over and awaits the result. The thread runs, in arrival order, every
call queued since it last woke, then hands all their results back to the event loop with one
wake-up. Under load a burst of concurrent requests costs one thread switch, not one each: a hop
through anyio's thread pool (``run_in_threadpool``) costs more CPU than a compiled model's
single-row call, so paying it once per request would double the price of a prediction.

One thread per worker: gunicorn runs one worker per core, so more threads would only compete
for the same core (and for the GIL, which ONNX Runtime releases while it computes).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class CallThread:
    """Runs callables on one dedicated thread; :meth:`run` awaits one of them."""

    def __init__(self, name: str = "model-calls") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.calls = 0  # calls run so far
        self.wakeups = 0  # rounds of calls handed back together (calls/wakeups: the batching)

    def start(self) -> None:
        """Bind to the running event loop and start the thread."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread, in the caller's context (its request id for the logs)."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f"{self._name}: not started")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((contextvars.copy_context(), fn, args, future))
        return await future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued calls, then end the thread."""
        if self._thread is None:
            return
        self._jobs.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            # What was queued when we looked, handed back together: later arrivals wait for
            # the next round, so a burst does not hold back the first results.
            batch = [jobs.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(jobs.get_nowait())
            self.wakeups += 1
            done: list[_Done] = []
            for job in batch:
                if job is None:
                    self._hand_back(done)
                    return
                context, fn, args, future = job
                try:
                    done.append((future, True, context.run(fn, *args)))
                except BaseException as exc:  # handed to the awaiting request, raised there
                    done.append((future, False, exc))
                self.calls += 1
            self._hand_back(done)

    def _hand_back(self, done: list[_Done]) -> None:
        if done and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_settle, done)


def _settle(done: list[_Done]) -> None:
    for future, ok, value in done:
        if future.cancelled():  # the client went away; nothing awaits this result
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class ModelCalls:
    """Where a worker's ``predict`` calls run: on the event loop itself when they are small and
    measured cheap, on the :class:`CallThread` otherwise.

    A compiled model answers one row in tens of microseconds, less than any thread hop, and a
    second thread running Python makes the event loop wait for the GIL each time it comes back
    from a system call (a socket write waited up to a switch interval, 5 ms, in the profiles).
    So calls of at most ``max_inline_rows`` rows whose running mean (measured on every such
    call, wherever it ran) is under ``budget_s`` run inline; anything bigger, slower, or from a
    service that does I/O in ``predict`` (``inline=False``) goes to the thread. Until the mean
    is known, small calls go to the thread too.
    """

    def __init__(
        self,
        thread: CallThread,
        *,
        budget_s: float,
        max_inline_rows: int,
        inline: bool = True,
        smoothing: float = 0.05,
    ) -> None:
        self.thread = thread
        self.budget_s = budget_s
        self.max_inline_rows = max_inline_rows
        self.inline = inline and budget_s > 0 and max_inline_rows > 0
        self._smoothing = smoothing
        self.mean_small_s: float | None = None  # running mean duration of small calls
        self.inline_calls = 0

    async def run(self, rows: int, fn: Callable[..., T], *args: Any) -> T:
        if rows > self.max_inline_rows:
            return await self.thread.run(fn, *args)
        mean = self.mean_small_s
        if self.inline and mean is not None and mean < self.budget_s:
            self.inline_calls += 1
            return self._timed(fn, *args)
        return await self.thread.run(self._timed, fn, *args)

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            elapsed = time.perf_counter() - start
            mean = self.mean_small_s
            self.mean_small_s = (
                elapsed if mean is None else mean + self._smoothing * (elapsed - mean)
            )


class MicroBatcher:
    """Adaptive micro-batching (off by default, ``VIGIE_MICRO_BATCH_WINDOW_US``): the small
    predict calls that arrive within ``window_s`` of the first one (or until ``max_rows`` rows)
    are scored by one ``predict_batch`` call on the model thread.

    A big tree ensemble's single-row call is bound by memory latency: with the caches cold (as
    they are between requests) it costs several times what the same call costs in a tight loop,
    and a batch of rows walks the same top nodes once. The window is a latency price paid only
    under concurrency: a request alone waits the window, then goes by itself.
    """

    def __init__(
        self,
        thread: CallThread,
        predict_batch: Callable[[list[tuple[Any, ...]]], list[Any]],
        *,
        window_s: float,
        max_rows: int,
        observe: Callable[[int], object] = lambda _calls: None,
    ) -> None:
        self.thread = thread
        self._observe = observe  # told the number of calls of each batch (a metric)
        self._predict_batch = predict_batch
        self.window_s = window_s
        self.max_rows = max_rows
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._rows = 0
        self._timer: asyncio.TimerHandle | None = None
        self._scoring: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.calls = 0

    async def run(self, rows: int, *args: Any) -> Any:
        """The result of ``args`` (one predict call's arguments) within its batch; its own
        exception when its call failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        self._rows += rows
        if self._rows >= self.max_rows:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._rows = self._pending, [], 0
        if batch:
            self.batches += 1
            self.calls += len(batch)
            self._observe(len(batch))
            task = asyncio.get_running_loop().create_task(self._score(batch))
            self._scoring.add(task)
            task.add_done_callback(self._scoring.discard)

    async def _score(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            results = await self.thread.run(self._predict_batch, [args for args, _ in batch])
        except BaseException as exc:  # the batch call itself failed: each caller gets it
            results = [exc] * len(batch)
        for (_args, future), result in zip(batch, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
