"""Reads level events from the Redis Stream through the consumer group, nothing lost.

* On start (and after any error) it first re-reads its **own pending entries** (``XREADGROUP``
  from id ``0``): entries it had read but not acknowledged when it crashed.
* Every ``claim_idle_ms`` it **claims** entries left pending by other consumers that died
  (``XAUTOCLAIM``).
* An entry is **acknowledged only after** its effects are committed to the database; a repeat is
  harmless because ``event_id`` is recorded in the same transaction.
* Entries are read ``read_batch`` at a time and a batch is applied in **one transaction**
  (:func:`~vigie_services.alerting.processing.apply_batch`): under load nearly every event repeats
  its asset's level, and costs a few dictionary operations plus its ``processed_events`` row.

Redis going away is survived by retrying with backoff; redis-py reconnects on the next command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from vigie.contract.level_event import LevelEvent
from vigie.io.redis import REDIS_ERRORS
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.metrics import AlertingMetrics
from vigie_services.alerting.processing import Applied, apply_batch, utcnow
from vigie_services.alerting.settings import AlertingSettings

log = logging.getLogger(__name__)

Entry = tuple[str, LevelEvent | None]


class LevelConsumer:
    def __init__(
        self,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        settings: AlertingSettings,
        metrics: AlertingMetrics,
        consumer_name: str,
        on_commit: Callable[[], None],
        db: DatabaseThread,
    ) -> None:
        self._db = db
        self._redis = client
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics
        self._name = consumer_name
        self._on_commit = on_commit
        self._stream = settings.levels_stream
        self._group = settings.consumer_group
        self._last_claim = 0.0
        self.batches = 0  # batches applied (committed and acknowledged)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        backoff = 0.2
        own_pending = True
        while True:
            try:
                await self.ensure_group()
                if own_pending:
                    entries = await self._read("0", block_ms=None)
                    if not entries:
                        own_pending = False
                        continue
                else:
                    entries = await self._claim() or await self._read(">", block_ms=1000)
                if entries:
                    await self._handle(entries)
                    if not own_pending and len(entries) < self._settings.read_batch:
                        # Every predict call emits an event: at a few thousand a second, reading
                        # as soon as one arrives made one transaction (and fsync) per event.
                        await asyncio.sleep(self._settings.read_linger_ms / 1000)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                log.warning("level stream unavailable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                own_pending = True
            except Exception:
                log.exception("processing level events failed; they stay pending and are retried")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                own_pending = True

    async def _read(self, start: str, block_ms: int | None) -> list[Entry]:
        reply: Any = await self._redis.xreadgroup(
            self._group, self._name, {self._stream: start}, count=self._settings.read_batch,
            block=block_ms,
        )  # fmt: skip
        if not reply:
            return []
        _stream, raw = reply[0]
        return [self._parse(entry_id, fields) for entry_id, fields in raw]

    async def _claim(self) -> list[Entry]:
        now = time.monotonic()
        if now - self._last_claim < self._settings.claim_idle_ms / 1000:
            return []
        self._last_claim = now
        reply: Any = await self._redis.xautoclaim(
            self._stream, self._group, self._name, min_idle_time=self._settings.claim_idle_ms,
            start_id="0-0", count=self._settings.read_batch,
        )  # fmt: skip
        claimed = reply[1]
        if claimed:
            log.info("claimed %d level events left pending by another consumer", len(claimed))
        return [self._parse(entry_id, fields) for entry_id, fields in claimed]

    def _parse(self, entry_id: Any, fields: Any) -> Entry:
        sid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = fields.get(b"event") if fields else None
        if raw is None:
            log.error("level stream entry %s has no 'event' field; skipped", sid)
            return sid, None
        try:
            return sid, LevelEvent.model_validate_json(raw)
        except ValidationError as exc:
            log.error("level stream entry %s is not a valid level event; skipped: %s", sid, exc)
            return sid, None

    async def _handle(self, entries: list[Entry]) -> None:
        transitions = await self._db.call(self._apply_all, entries)
        await self._redis.xack(self._stream, self._group, *[sid for sid, _ in entries])
        self.batches += 1
        if transitions:
            self._on_commit()

    def _apply_all(self, entries: list[Entry]) -> int:
        """Apply a batch in one transaction (see :func:`apply_batch`); returns how many
        transitions it made. Any error rolls the whole batch back: nothing is acknowledged, and
        the entries are read again. Metrics move only after the commit, once per batch."""
        valid = [(sid, event) for sid, event in entries if event is not None]
        results: list[Applied] = []
        if valid:
            with self._sessions.begin() as session:
                results = apply_batch(session, valid, utcnow(), self._settings.public_url)
        m = self._metrics
        m.events.labels("invalid").inc(len(entries) - len(valid))
        for outcome, n in Counter(r.outcome for r in results).items():
            m.events.labels(outcome).inc(n)
        suppressed: Counter[str] = Counter()
        transitions = 0
        for (_sid, event), result in zip(valid, results, strict=True):
            t = result.transition
            if t is None:
                continue
            transitions += 1
            suppressed.update(result.suppressed)
            m.transitions.labels(event.service, t.kind, t.to_level).inc()
            if t.kind == "opened":
                m.opened.labels(event.service, t.to_level).inc()
            elif t.kind == "resolved":
                m.resolved.labels(event.service, t.from_level or "").inc()
        for channel, n in suppressed.items():
            m.notifications.labels(channel, "suppressed").inc(n)
        return transitions
