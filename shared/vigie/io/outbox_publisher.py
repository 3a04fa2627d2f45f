"""One way to drain an outbox to Redis: :class:`OutboxPublisher`.

An outbox holds events that must reach a Redis Stream (and its live channel) but have not yet:
the local SQLite outbox of a prediction service's level events (:class:`vigie.io.outbox.
LocalOutbox`), alerting's transitions not yet published (``published = false``,
:class:`vigie_services.alerting.alert_events.AlertEventPublisher`). Anything with the
:class:`Outbox` protocol can be drained.

Guarantees
----------
* **Order**: entries are taken oldest first and a batch is marked sent only once Redis has it,
  so the next batch never overtakes it. An outbox that several processes drain (one SQLite file
  for the workers of a host) lets one drainer take entries at a time (see :meth:`Outbox.take`).
* **At-least-once**: an entry leaves the outbox only after Redis answered. A crash between the
  answer and :meth:`Outbox.mark_sent`, or a Redis that runs the batch after the client gave up
  waiting, sends it again: events carry an id consumers drop repeats by.
* **Nothing blocks on Redis**: a failing Redis makes the loop wait with an exponential backoff
  (``retry_s``: first and longest wait); wake-ups (:meth:`OutboxPublisher.wake`, new entries)
  do not hurry a retry, so a burst of queued events does not hammer a Redis that is down.

Batches go out through a :class:`~vigie.io.streams.StreamWriter` (one Lua script call per batch,
:mod:`vigie.io.streams`). The outbox's methods run through ``run`` (a thread by default; alerting
passes its database thread), never on the event loop, except :meth:`Outbox.pending` and
:meth:`Outbox.release`, which must be cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from vigie.io.redis import REDIS_ERRORS
from vigie.io.streams import StreamWriter, SyncStreamWriter

log = logging.getLogger(__name__)

Runner = Callable[..., Awaitable[Any]]  # run(fn, *args): fn(*args) off the event loop

BATCH = 500


class Outbox(Protocol):
    """Entries waiting for Redis, each an ``(id, payload)``: ids increase with age."""

    def pending(self) -> bool:
        """Whether entries may be waiting: cheap (it runs on the event loop); True when the
        outbox cannot tell cheaply (the publisher then asks :meth:`take`)."""

    def take(self, limit: int) -> Sequence[tuple[int, bytes]]:
        """Up to ``limit`` of the oldest entries, oldest first. An outbox that several drainers
        share claims them (and every later entry) for this drainer until :meth:`mark_sent` or
        :meth:`release`, and answers ``[]`` to the others meanwhile."""

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Redis has these entries (what :meth:`take` gave): remove them; ends the claim."""

    def release(self) -> None:
        """The entries taken did not go: they stay, in order; ends the claim. Cheap."""


class OutboxPublisher:
    """Drains ``outbox`` to Redis in batches, in the background (:meth:`start` / :meth:`stop`,
    or :meth:`run` as a task of one's own) and on demand (:meth:`drain`, :meth:`drain_blocking`).

    Hooks (metrics, log lines of the owner): ``on_sent(n)`` after each batch Redis took,
    ``on_failure(exc)`` after an attempt Redis failed, ``after_attempt()`` (through ``run``)
    after each background attempt, e.g. to report the outbox's depth.
    """

    def __init__(
        self,
        outbox: Outbox,
        writer: StreamWriter,
        *,
        name: str,
        interval_s: float,
        retry_s: tuple[float, float],
        run: Runner = asyncio.to_thread,
        sync_writer: SyncStreamWriter | None = None,
        batch: int = BATCH,
        on_sent: Callable[[int], None] = lambda _n: None,
        on_failure: Callable[[BaseException], None] = lambda _e: None,
        after_attempt: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._outbox = outbox
        self._writer = writer
        self._sync_writer = sync_writer
        self._run = run
        self._batch = batch
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._on_sent = on_sent
        self._on_failure = on_failure
        self._after_attempt = after_attempt
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New entries: drain now rather than at the next interval (unless Redis is failing)."""
        self._wake.set()

    async def drain(self) -> int:
        """Send what the outbox holds, batch after batch; returns how many entries went. Raises
        what Redis raises (the batch that failed and the later ones stay queued)."""
        sent = 0
        while True:
            entries = await self._take()
            if not entries:
                return sent
            try:
                await self._writer.write([payload for _id, payload in entries])
            except BaseException:  # Redis, or cancelled mid-flight: they may go again later
                self._outbox.release()
                raise
            await self._run(self._outbox.mark_sent, [i for i, _payload in entries])
            self._on_sent(len(entries))
            sent += len(entries)
            if len(entries) < self._batch:
                return sent

    async def _take(self) -> Sequence[tuple[int, bytes]]:
        take = asyncio.ensure_future(self._run(self._outbox.take, self._batch))
        try:
            return await asyncio.shield(take)
        except asyncio.CancelledError:
            # The call goes on in its thread: whatever it claims must not stay claimed.
            take.add_done_callback(self._release_taken)
            raise

    def _release_taken(self, take: asyncio.Future[Sequence[tuple[int, bytes]]]) -> None:
        if not take.cancelled() and take.exception() is None and take.result():
            self._outbox.release()

    def drain_blocking(self) -> int:
        """:meth:`drain` in the calling thread, with the blocking writer."""
        if self._sync_writer is None:
            raise RuntimeError(f"{self.name}: no blocking writer to drain with")
        sent = 0
        while True:
            entries = self._outbox.take(self._batch)
            if not entries:
                return sent
            try:
                self._sync_writer.write([payload for _id, payload in entries])
            except BaseException:
                self._outbox.release()
                raise
            self._outbox.mark_sent([i for i, _payload in entries])
            self._on_sent(len(entries))
            sent += len(entries)
            if len(entries) < self._batch:
                return sent

    async def run(self) -> None:
        """The background loop: drain when woken or every ``interval_s``, back off while Redis
        fails. Runs until cancelled."""
        retry: float | None = None  # the wait before the next attempt while Redis fails
        while True:
            if retry is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
            else:
                await asyncio.sleep(retry)
            self._wake.clear()
            try:
                idle = not self._outbox.pending()
                if not idle:
                    await self.drain()
            except REDIS_ERRORS as exc:
                self._on_failure(exc)
                log.debug("%s wait for redis: %s", self.name, exc)
                retry = self._next_retry(retry)
            except Exception:
                log.exception("%s: draining the outbox failed; retrying", self.name)
                retry = self._next_retry(retry)
            else:
                retry = None
                if idle:
                    continue
            if self._after_attempt is not None:
                try:
                    await self._run(self._after_attempt)
                except Exception:  # a hook's trouble (a busy database) must not stop the loop
                    log.exception("%s: after-attempt hook failed", self.name)

    def _next_retry(self, retry: float | None) -> float:
        first, longest = self._retry_s
        return first if retry is None else min(retry * 2, longest)

    def start(self) -> None:
        """Run the background loop as a task of the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)

    async def stop(self, *, last_drain: bool = True) -> None:
        """Stop the background loop; then (``last_drain``) hand what is queued over if Redis
        takes it. What cannot go stays in the outbox for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if last_drain and self._outbox.pending():
            with contextlib.suppress(*REDIS_ERRORS):
                await self.drain()
