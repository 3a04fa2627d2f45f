"""Periodic work: reminders for open unacknowledged alerts, gauges for dashboards, and the
retention of ``processed_events`` (one row per level event: millions an hour under load)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from vigie.io.redis import REDIS_ERRORS
from vigie_services.alerting.dbthread import DatabaseThread, relaxed_commit
from vigie_services.alerting.metrics import AlertingMetrics
from vigie_services.alerting.models import Alert, Delivery
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.reminders import due_reminders
from vigie_services.alerting.settings import AlertingSettings
from vigie_services.alerting.upkeep import purge_processed

log = logging.getLogger(__name__)

# Rows deleted per transaction: each chunk holds the database thread for a few milliseconds only.
PURGE_CHUNK = 5000


class Housekeeper:
    def __init__(
        self,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        settings: AlertingSettings,
        metrics: AlertingMetrics,
        on_commit: Callable[[], None],
        db: DatabaseThread,
    ) -> None:
        self._db = db
        self._redis = client
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics
        self._on_commit = on_commit

    def remind(self) -> int:
        s = self._settings
        with self._sessions.begin() as session:
            made = due_reminders(session, utcnow(), s.repeat_interval_s, s.public_url)
        for alert, t in made:
            self._metrics.transitions.labels(alert.service, t.kind, t.to_level).inc()
        return len(made)

    def _purge_chunk(self, before: datetime) -> int:
        with self._sessions.begin() as session:
            relaxed_commit(session)  # lost in a database crash: purged again next time
            return purge_processed(session, before, PURGE_CHUNK)

    async def purge_processed(self) -> int:
        """Forget the ids of events processed longer than ``processed_retention_s`` ago, a
        chunk per transaction, so that the consumer's batches run in between."""
        before = utcnow() - timedelta(seconds=self._settings.processed_retention_s)
        total = 0
        while True:
            n = await self._db.call(self._purge_chunk, before)
            total += n
            if n < PURGE_CHUNK:
                break
        if total:
            log.debug("forgot %d processed event ids older than %s", total, before)
        return total

    def _db_gauges(self) -> None:
        m = self._metrics
        with self._sessions() as session:
            counts = session.execute(
                select(Alert.service, Alert.level, func.count())
                .where(Alert.status == "open")
                .group_by(Alert.service, Alert.level)
            ).all()
            dead = session.scalar(select(func.count()).where(Delivery.status == "dead"))
        m.open_alerts.clear()
        for service, level, n in counts:
            m.open_alerts.labels(service, level).set(n)
        m.dead_letters.set(dead or 0)

    async def _stream_gauges(self) -> None:
        s = self._settings
        for group in await self._redis.xinfo_groups(s.levels_stream):
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == s.consumer_group:
                self._metrics.stream_pending.set(group.get("pending") or 0)
                lag = group.get("lag")
                if lag is not None:
                    self._metrics.stream_lag.set(lag)

    async def run(self) -> None:
        while True:
            try:
                if await self._db.call(self.remind):
                    self._on_commit()
                await self._db.call(self._db_gauges)
                await self.purge_processed()
                await self._stream_gauges()
            except REDIS_ERRORS as exc:
                log.debug("stream gauges unavailable: %s", exc)
            except Exception:
                log.exception("housekeeping failed; retrying")
            await asyncio.sleep(self._settings.reminder_check_s)
