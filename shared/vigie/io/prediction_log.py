"""The prediction log (design.md section 2): every prediction served, stored for history and
audit, and the forecast points that observed truth is later matched with (:mod:`.feedback`).

Predictions are queued in memory by the request and written by one background thread in
batches, so no request waits on the database. The tables are :mod:`.prediction_tables`, created
and changed by the migrations of :mod:`.prediction_migrations` (:func:`ensure_schema`).

SQLite (one file per service under ``var/``) is the default; PostgreSQL works with the same code
(``VIGIE_DATABASE_URL=postgresql+psycopg://...``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from vigie.contract.errors import ServiceUnavailable
from vigie.io.db import make_engine, upgrade
from vigie.io.db.engine import json_text
from vigie.io.prediction_migrations import MIGRATIONS
from vigie.io.prediction_tables import PredictionRow, utc_naive
from vigie.obs.metrics import ServiceMetrics

__all__ = [
    "ForecastPoint",
    "PredictionLog",
    "PredictionRecord",
    "ensure_schema",
    "make_engine",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecastPoint:
    """One forecast value that an observation can later be compared with."""

    target: str
    horizon: str
    target_time: datetime
    value: float


@dataclass
class PredictionRecord:
    prediction_id: str
    asset_id: str
    timestamp: datetime
    request_id: str
    model_version: str
    level: str
    measurement: dict[str, Any]
    prediction: dict[str, Any]
    points: list[ForecastPoint] = field(default_factory=list)


def _sqlite_stamp(ts: datetime) -> str:
    # SQLAlchemy's storage format for DateTime on SQLite, always with microseconds: times are
    # compared as strings there, so one format for every row and every bound parameter.
    return ts.isoformat(" ", "microseconds")


def _same(ts: datetime) -> datetime:
    return ts


@dataclass(frozen=True)
class _InsertSql:
    """The prediction log's INSERT statements in a dialect's own parameter style."""

    predictions: str
    points: str
    stamp: Callable[[datetime], Any]

    @classmethod
    def of(cls, dialect: Dialect) -> _InsertSql:
        sqlite = dialect.name == "sqlite"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        json = mark if sqlite else f"CAST({mark} AS JSON)"

        def insert_into(table: str, columns: list[tuple[str, str]]) -> str:
            names = ", ".join(c for c, _ in columns)
            marks = ", ".join(m for _, m in columns)
            return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 (our names)

        predictions = [
            (c, json if c in ("measurement", "prediction") else mark)
            for c in (column.name for column in PredictionRow.__table__.columns)
            if c != "seq"
        ]
        points = [
            (c, mark)
            for c in ("prediction_id", "service", "asset_id", "target", "horizon", "target_time",
                      "predicted")
        ]  # fmt: skip
        return cls(
            insert_into("predictions", predictions),
            insert_into("forecast_points", points),
            _sqlite_stamp if sqlite else _same,
        )


def ensure_schema(engine: Engine) -> None:
    """Upgrade the prediction log's database to the latest revision (a no-op when it is there).

    ``vigie serve`` runs it once before forking workers (:mod:`vigie.ops.prepare`); every
    :class:`PredictionLog` runs it again, which then costs one read of the version table.
    Services starting together on one database take turns under the runner's lock; a database
    created before migrations is adopted, its rows kept (:func:`vigie.io.db.upgrade`)."""
    upgrade(engine.url, MIGRATIONS)


class PredictionLog:
    """Batched, off-the-hot-path writer and the queries over what it wrote."""

    def __init__(
        self,
        engine: Engine,
        service: str,
        metrics: ServiceMetrics,
        *,
        flush_interval_s: float = 0.5,
        batch_size: int = 1000,
    ) -> None:
        self.engine = engine
        self.service = service
        self._metrics = metrics
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._queue: deque[PredictionRecord] = deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ensure_schema(engine)

    # -- writing ----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Predictions queued and not written yet."""
        return len(self._queue)

    def submit(self, records: list[PredictionRecord]) -> None:
        """Queue records for the writer thread; returns at once (callers bound the backlog,
        see :meth:`room`)."""
        self._queue.extend(records)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def room(self, max_backlog: int, timeout_s: float) -> None:
        """Wait until the backlog is under ``max_backlog`` (the writer is behind: the database
        takes fewer rows a second than predictions come), ServiceUnavailable after
        ``timeout_s``. Without it the queue, and the worker's memory, grew without bound."""
        if len(self._queue) < max_backlog:
            return
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        while len(self._queue) >= max_backlog:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"the prediction log is {len(self._queue)} predictions behind the database; "
                    "retry later",
                    headers={"Retry-After": "1"},
                )
            await asyncio.sleep(0.005)

    def flush(self) -> None:
        """Write everything queued so far (called by the writer, and before reads)."""
        with self._write_lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), 5000))]
                try:
                    self._write(batch)
                except OperationalError:
                    # The database is unreachable or locked: keep the batch for the next attempt.
                    self._queue.extendleft(reversed(batch))
                    self._metrics.prediction_log_errors.labels(self.service).inc()
                    raise
                except Exception:
                    # Retrying cannot fix a batch the database rejects; do not let it block
                    # every later prediction. Logged and counted, so it is seen.
                    self._metrics.prediction_log_errors.labels(self.service).inc()
                    log.exception("dropped %d predictions the database rejected", len(batch))
                    continue
                self._metrics.prediction_log_rows.labels(self.service).inc(len(batch))

    def _write(self, batch: list[PredictionRecord]) -> None:
        # Straight to the driver's executemany: the ORM's per-row work cost more CPU than the
        # prediction itself (23 us a row against 4 here, on SQLite).
        now = datetime.now(UTC).replace(tzinfo=None)
        service = self.service
        with self.engine.begin() as conn:
            sql = _InsertSql.of(conn.dialect)
            stamp = sql.stamp
            conn.exec_driver_sql(
                sql.predictions,
                [
                    (
                        r.prediction_id,
                        service,
                        r.asset_id,
                        stamp(utc_naive(r.timestamp)),
                        r.request_id,
                        r.model_version,
                        r.level,
                        json_text(r.measurement),
                        json_text(r.prediction),
                        stamp(now),
                    )
                    for r in batch
                ],
            )
            points = [
                (
                    r.prediction_id,
                    service,
                    r.asset_id,
                    p.target,
                    p.horizon,
                    stamp(utc_naive(p.target_time)),
                    p.value,
                )
                for r in batch
                for p in r.points
            ]
            if points:
                conn.exec_driver_sql(sql.points, points)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("prediction log write failed; will retry")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        finally:
            self.engine.dispose()

    # -- reading ----------------------------------------------------------------------------
    def page(
        self,
        asset_id: str,
        start: datetime | None,
        end: datetime | None,
        *,
        after_seq: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        """One page of an asset's predictions in write order; ``cursor`` pages onward."""
        self.flush()
        q = (
            select(PredictionRow)
            .where(PredictionRow.service == self.service, PredictionRow.asset_id == asset_id)
            .where(PredictionRow.seq > after_seq)
            .order_by(PredictionRow.seq)
            .limit(limit)
        )
        if start is not None:
            q = q.where(PredictionRow.timestamp >= utc_naive(start))
        if end is not None:
            q = q.where(PredictionRow.timestamp < utc_naive(end))
        with Session(self.engine) as session:
            return [
                {
                    "cursor": r.seq,
                    "prediction_id": r.prediction_id,
                    "timestamp": r.timestamp.replace(tzinfo=UTC),
                    "level": r.level,
                    "model_version": r.model_version,
                    "request_id": r.request_id,
                    "measurement": r.measurement,
                    "prediction": r.prediction,
                    "created_at": r.created_at.replace(tzinfo=UTC),
                }
                for r in session.scalars(q)
            ]
