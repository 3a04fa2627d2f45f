"""Sends the deliveries the transitions created, with retries, without one channel blocking another.

Each channel has its own concurrency limit and its own share of the work claimed from the
database, so a dead SMTP server fills only the email slots while webhooks and pushes keep flowing.
Every attempt is recorded (``delivery_attempts``) with its outcome and reason; a failure is retried
with exponential backoff and full jitter until ``max_attempts``, then the delivery is ``dead`` (the
dead-letter view). A permanent failure (bad address, a 4xx) is dead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vigie_services.alerting.dbthread import DatabaseThread, relaxed_commit
from vigie_services.alerting.lifecycle import retry_delay
from vigie_services.alerting.metrics import AlertingMetrics
from vigie_services.alerting.models import Delivery, DeliveryAttempt
from vigie_services.alerting.notifiers.base import DeliveryError, Notification, Notifier
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.settings import AlertingSettings
from vigie_services.alerting.upkeep import reset_interrupted_deliveries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    delivery_id: int
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    job: Job
    reason: str | None  # None: sent
    permanent: bool
    duration_s: float


class DeliveryWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        db: DatabaseThread,
        notifiers: dict[str, Notifier],
        settings: AlertingSettings,
        metrics: AlertingMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._db = db
        self._notifiers = notifiers
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._inflight = dict.fromkeys(notifiers, 0)
        self._slots = {ch: asyncio.Semaphore(settings.channel_concurrency) for ch in notifiers}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._outcome_ready = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        resumed = await self._db.call(self._in_tx, reset_interrupted_deliveries)
        if resumed:
            log.warning("%d deliveries were interrupted by a restart; sending them again", resumed)
        recorder = asyncio.create_task(self._record_loop())
        try:
            await self._claim_loop()
        finally:
            recorder.cancel()

    async def _claim_loop(self) -> None:
        while True:
            try:
                jobs = await self._db.call(self._claim_due)
            except Exception:
                log.exception("cannot read due deliveries; retrying")
                jobs = []
            for job in jobs:
                self._inflight[job.channel] += 1
                task = asyncio.create_task(self._send(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.delivery_poll_s)
                self._wake.clear()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _in_tx(self, fn: Any) -> Any:
        with self._sessions.begin() as session:
            return fn(session)

    def _claim_due(self) -> list[Job]:
        """Mark due deliveries ``sending``, at most the channel's free slots, so a channel that
        is slow or down never holds the others' work. A delivery counts as in flight until its
        outcome is recorded, which bounds what a crash can make us send twice to
        ``channel_concurrency`` per channel."""
        now = utcnow()
        room = {ch: self._settings.channel_concurrency - n for ch, n in self._inflight.items()}
        jobs: list[Job] = []
        with self._sessions.begin() as session:
            relaxed_commit(session)
            for channel, free in room.items():
                if free <= 0:
                    continue
                rows = session.scalars(
                    select(Delivery)
                    .where(
                        Delivery.channel == channel,
                        Delivery.status.in_(("pending", "retrying")),
                        Delivery.next_attempt_at <= now,
                    )
                    .order_by(Delivery.id)
                    .limit(free)
                ).all()
                for row in rows:
                    row.status = "sending"
                    jobs.append(
                        Job(
                            row.id,
                            row.channel,
                            row.target,
                            row.payload,
                            row.attempts,
                            row.created_at,
                        )
                    )
            # Channels nobody can send on: dead at once, with the reason.
            orphans = session.scalars(
                select(Delivery).where(
                    Delivery.channel.not_in(list(self._notifiers)),
                    Delivery.status.in_(("pending", "retrying")),
                )
            ).all()
            for row in orphans:
                row.status, row.reason = "dead", f"no notifier for channel {row.channel!r}"
        return jobs

    async def _send(self, job: Job) -> None:
        async with self._slots[job.channel]:
            notification = Notification.from_json({**job.payload, "delivery_id": job.delivery_id})
            started = time.perf_counter()
            reason: str | None = None
            permanent = False
            try:
                await asyncio.wait_for(
                    self._notifiers[job.channel].send(notification, job.target),
                    timeout=self._settings.send_timeout_s * 2,
                )
            except DeliveryError as exc:
                reason, permanent = exc.reason, exc.permanent
            except TimeoutError:
                reason = f"no answer within {self._settings.send_timeout_s * 2:.0f}s"
            except Exception as exc:  # a bug in a notifier must not kill the worker
                log.exception("notifier %s failed unexpectedly", job.channel)
                reason = f"unexpected error: {exc!r}"
        # Still in flight (counted) until _record_loop has written the outcome.
        self._outcomes.append(Outcome(job, reason, permanent, time.perf_counter() - started))
        self._outcome_ready.set()

    async def _record_loop(self) -> None:
        """Write outcomes in batches: one transaction for all the sends that finished meanwhile."""
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            batch, self._outcomes = self._outcomes, []
            try:
                results = await self._db.call(self._record, batch)
            except Exception:
                log.exception("recording %d delivery outcomes failed; retrying", len(batch))
                self._outcomes[:0] = batch
                self._outcome_ready.set()
                await asyncio.sleep(0.5)
                continue
            retry = False
            for outcome, status in zip(batch, results, strict=True):
                job = outcome.job
                self._inflight[job.channel] -= 1
                self._metrics.notifications.labels(job.channel, status).inc()
                if status == "sent":
                    latency = (utcnow() - job.created_at).total_seconds()
                    self._metrics.delivery_latency.labels(job.channel).observe(max(latency, 0.0))
                elif status == "dead":
                    log.error("delivery %d (%s) is dead: %s", job.delivery_id, job.channel,
                              outcome.reason)  # fmt: skip
                else:
                    retry = True
            if retry:
                self.wake()

    def _record(self, batch: list[Outcome]) -> list[str]:
        now = utcnow()
        statuses = []
        with self._sessions.begin() as session:
            for outcome in batch:
                job = outcome.job
                attempt = job.attempts + 1
                if outcome.reason is None:
                    status = "sent"
                elif outcome.permanent or attempt >= self._settings.max_attempts:
                    status = "dead"
                else:
                    status = "retrying"
                values: dict[str, Any] = {
                    "attempts": attempt,
                    "reason": outcome.reason,
                    "status": status,
                }
                if status == "sent":
                    values["sent_at"] = now
                elif status == "retrying":
                    delay = retry_delay(
                        attempt, self._settings.retry_base_s, self._settings.retry_max_s, self._rng
                    )
                    values["next_attempt_at"] = now + timedelta(seconds=delay)
                session.execute(
                    update(Delivery).where(Delivery.id == job.delivery_id).values(**values)
                )
                session.add(
                    DeliveryAttempt(
                        delivery_id=job.delivery_id,
                        number=attempt,
                        at=now,
                        outcome=status,
                        reason=outcome.reason,
                        duration_ms=round(outcome.duration_s * 1000, 3),
                    )
                )
                statuses.append(status)
        return statuses
