"""The prediction log and observed truth (design.md section 2), with SQLAlchemy.

Predictions are queued in memory by the request and written by one background thread in
batches, so no request waits on the database. Each prediction may carry *forecast points* (a
target, a horizon and the time it is about); observed values sent to ``POST /v1/feedback`` are
matched to those points, stored next to them, and turned into live error metrics.

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
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vigie.contract.errors import ServiceUnavailable
from vigie.io.sqlite import enable_wal
from vigie.obs.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


def utc_naive(ts: datetime) -> datetime:
    """Stored times are naive UTC: identical comparisons on SQLite and PostgreSQL."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


class PredictionRow(Base):
    __tablename__ = "predictions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(36), unique=True)
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    request_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(80))
    level: Mapped[str] = mapped_column(String(16))
    measurement: Mapped[dict[str, Any]] = mapped_column(JSON)
    prediction: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_predictions_asset_time", "service", "asset_id", "timestamp"),)


class ForecastPointRow(Base):
    __tablename__ = "forecast_points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.prediction_id"))
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    horizon: Mapped[str] = mapped_column(String(16))
    target_time: Mapped[datetime] = mapped_column(DateTime)
    predicted: Mapped[float] = mapped_column(Float)
    observed: Mapped[float | None] = mapped_column(Float, nullable=True)
    abs_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (Index("ix_points_match", "service", "asset_id", "target", "target_time"),)


class ObservationRow(Base):
    __tablename__ = "observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    value: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    subject: Mapped[str] = mapped_column(String(128))
    matched: Mapped[int] = mapped_column(Integer)


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


@dataclass(frozen=True)
class Observation:
    target: str
    timestamp: datetime
    value: float


@dataclass(frozen=True)
class MatchResult:
    timestamp: datetime
    target: str
    matched: int
    value: float = 0.0
    # The stored prediction items this observation was matched to (what the service answered).
    predictions: tuple[dict[str, Any], ...] = ()


def _json(value: Any) -> str:
    # orjson: fast, and it writes datetimes (RFC 3339) and enums that predictions carry.
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS).decode()


_SQLITE_TIMEOUT_S = 30.0


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": _SQLITE_TIMEOUT_S}, json_serializer=_json
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            enable_wal(dbapi_conn, _SQLITE_TIMEOUT_S)
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json)


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


# Any fixed 64-bit number: the PostgreSQL advisory lock the services' schema creation shares.
_SCHEMA_LOCK_KEY = 0x76696769655F6C67  # "vigie_lg"


def ensure_schema(engine: Engine) -> None:
    """Create missing tables. ``vigie serve`` runs it once before forking workers, so two
    workers never race to create the same table; on PostgreSQL several services sharing one
    database (compose, Kubernetes) may start together, so they take turns under a lock."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                Base.metadata.create_all(conn)
            return
        except OperationalError as exc:
            # SQLite has no such lock: a table another process created since our check is
            # found by the next pass.
            if "already exists" not in str(exc) or attempt == 2:
                raise


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
                        _json(r.measurement),
                        _json(r.prediction),
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

    # -- observed truth ---------------------------------------------------------------------
    def record_observations(
        self, asset_id: str, observations: list[Observation], subject: str
    ) -> list[MatchResult]:
        """Store observations, attach them to the forecasts about their time, update metrics."""
        self.flush()  # match against every prediction made so far, not only the written ones
        now = datetime.now(UTC).replace(tzinfo=None)
        results: list[MatchResult] = []
        touched: set[str] = set()
        m = self._metrics
        with self.engine.begin() as conn:
            for obs in observations:
                ts = utc_naive(obs.timestamp)
                match = (
                    ForecastPointRow.service == self.service,
                    ForecastPointRow.asset_id == asset_id,
                    ForecastPointRow.target == obs.target,
                    ForecastPointRow.target_time == ts,
                )
                rows = conn.execute(
                    select(
                        ForecastPointRow.id,
                        ForecastPointRow.horizon,
                        ForecastPointRow.predicted,
                        PredictionRow.prediction,
                    )
                    .join(
                        PredictionRow,
                        PredictionRow.prediction_id == ForecastPointRow.prediction_id,
                    )
                    .where(*match)
                ).all()
                for point_id, horizon, predicted, _prediction in rows:
                    err = abs(obs.value - predicted)
                    conn.execute(
                        update(ForecastPointRow)
                        .where(ForecastPointRow.id == point_id)
                        .values(observed=obs.value, abs_error=err, observed_at=now)
                    )
                    m.feedback_observations.labels(self.service, asset_id, horizon).inc()
                    m.feedback_abs_error.labels(self.service, asset_id, horizon).inc(err)
                    touched.add(horizon)
                conn.execute(
                    insert(ObservationRow),
                    [
                        {
                            "service": self.service,
                            "asset_id": asset_id,
                            "target": obs.target,
                            "timestamp": ts,
                            "value": obs.value,
                            "received_at": now,
                            "subject": subject,
                            "matched": len(rows),
                        }
                    ],
                )
                results.append(
                    MatchResult(
                        obs.timestamp, obs.target, len(rows), obs.value,
                        tuple(r[3] for r in rows),
                    )
                )  # fmt: skip
            for horizon in touched:
                mae = self._recent_mae(conn, asset_id, horizon)
                if mae is not None:
                    m.live_mae.labels(self.service, asset_id, horizon).set(mae)
        return results

    def _recent_mae(
        self, conn: Any, asset_id: str, horizon: str, window: int = 1000
    ) -> float | None:
        recent = (
            select(ForecastPointRow.abs_error)
            .where(
                ForecastPointRow.service == self.service,
                ForecastPointRow.asset_id == asset_id,
                ForecastPointRow.horizon == horizon,
                ForecastPointRow.abs_error.is_not(None),
            )
            .order_by(ForecastPointRow.target_time.desc())
            .limit(window)
            .subquery()
        )
        value = conn.execute(select(func.avg(recent.c.abs_error))).scalar()
        return None if value is None else float(value)

    def live_mae(self, asset_id: str) -> dict[str, float]:
        """MAE per horizon over the most recent observed forecasts of an asset."""
        with self.engine.connect() as conn:
            horizons = conn.execute(
                select(ForecastPointRow.horizon)
                .where(
                    ForecastPointRow.service == self.service,
                    ForecastPointRow.asset_id == asset_id,
                    ForecastPointRow.abs_error.is_not(None),
                )
                .distinct()
            ).scalars()
            out = {}
            for h in horizons:
                mae = self._recent_mae(conn, asset_id, h)
                if mae is not None:
                    out[h] = mae
            return out
