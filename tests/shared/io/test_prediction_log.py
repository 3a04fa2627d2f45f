"""PredictionLog on SQLite and a real PostgreSQL: batched writes, backpressure, paging.

(Observed truth matched to what it wrote: test_feedback.py.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select

from tests.shared.io.records import SERVICE, T0, record
from tests.support.servers import wait_until
from vigie.io.prediction_log import ForecastPoint, PredictionLog, make_engine
from vigie.io.prediction_tables import ForecastPointRow, PredictionRow
from vigie.obs.metrics import ServiceMetrics


def count(log: PredictionLog, table: type) -> int:
    with log.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_submit_then_flush_writes_predictions_and_points(
    plog: PredictionLog, metrics: ServiceMetrics
) -> None:
    pts = [
        ForecastPoint("temp", "1h", T0 + timedelta(hours=1), 70.0),
        ForecastPoint("temp", "2h", T0 + timedelta(hours=2), 72.0),
    ]
    plog.submit([record(points=pts), record(asset="T2")])
    assert count(plog, PredictionRow) == 0  # submit only queues
    plog.flush()
    assert count(plog, PredictionRow) == 2
    assert count(plog, ForecastPointRow) == 2
    assert (
        metrics.registry.get_sample_value("vigie_prediction_log_rows_total", {"service": SERVICE})
        == 2
    )

    with plog.engine.connect() as conn:
        stored = conn.execute(
            select(
                ForecastPointRow.horizon, ForecastPointRow.target_time, ForecastPointRow.predicted
            ).order_by(ForecastPointRow.horizon)
        ).all()
    # Stored as naive UTC.
    assert stored == [
        ("1h", datetime(2024, 3, 1, 13, 0), 70.0),
        ("2h", datetime(2024, 3, 1, 14, 0), 72.0),
    ]


def test_writer_thread_writes_without_explicit_flush(
    database_url: str, metrics: ServiceMetrics
) -> None:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics, flush_interval_s=0.05)
    log.start()
    try:
        log.submit([record(), record()])
        wait_for_rows(database_url, 2, what="the writer thread to write 2 rows")
    finally:
        log.close()


def wait_for_rows(database_url: str, rows: int, what: str) -> None:
    """Wait (5 s at most) until the database holds ``rows`` predictions, read through an engine
    of its own so that nothing here calls flush()."""
    reader = make_engine(database_url)

    def written() -> bool:
        with reader.connect() as conn:
            n = conn.execute(select(func.count()).select_from(PredictionRow)).scalar_one()
        return bool(n == rows)

    try:
        wait_until(written, timeout=5, what=what)
    finally:
        reader.dispose()


def test_writer_thread_wakes_early_when_a_batch_is_full(
    database_url: str, metrics: ServiceMetrics
) -> None:
    # A long interval: only the batch-size wake-up can get the rows written in time.
    log = PredictionLog(
        make_engine(database_url), SERVICE, metrics, flush_interval_s=30, batch_size=3
    )
    log.start()
    try:
        log.submit([record() for _ in range(3)])
        wait_for_rows(database_url, 3, what="the full batch to be written")
    finally:
        log.close()


@pytest.mark.parametrize("started", [True, False], ids=["writer thread", "never started"])
def test_close_flushes_the_queue(database_url: str, metrics: ServiceMetrics, started: bool) -> None:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics, flush_interval_s=30)
    if started:
        log.start()
    log.submit([record(), record(), record()])
    log.close()
    check = PredictionLog(make_engine(database_url), SERVICE, metrics)
    try:
        assert count(check, PredictionRow) == 3
    finally:
        check.close()


def test_page_filters_by_asset_and_time_and_pages(plog: PredictionLog) -> None:
    hours = [T0 + timedelta(hours=h) for h in range(6)]
    recs = [record("T1", at, level="ALERTE" if i == 2 else "NORMAL") for i, at in enumerate(hours)]
    plog.submit(recs)
    plog.submit([record("T2", at) for at in hours])
    # page() flushes first, so nothing explicit is needed here.

    everything = plog.page("T1", None, None, after_seq=0, limit=100)
    assert [p["prediction_id"] for p in everything] == [r.prediction_id for r in recs]
    assert everything[0]["timestamp"] == hours[0]
    assert everything[0]["timestamp"].tzinfo is not None
    assert everything[2]["level"] == "ALERTE"
    assert everything[0]["measurement"] == {"load": 0.8}
    assert everything[0]["prediction"] == {"temp_1h": 71.5, "asset": "T1"}
    cursors = [p["cursor"] for p in everything]
    assert cursors == sorted(cursors)

    # [start, end): start inclusive, end exclusive.
    window = plog.page("T1", hours[1], hours[4], after_seq=0, limit=100)
    assert [p["timestamp"] for p in window] == hours[1:4]

    # An aware bound in another offset means the same instant.
    paris = timezone(timedelta(hours=2))
    same = plog.page(
        "T1", hours[1].astimezone(paris), hours[4].astimezone(paris), after_seq=0, limit=100
    )
    assert [p["cursor"] for p in same] == [p["cursor"] for p in window]

    # Paging: after_seq + limit walks through all of it with no overlap.
    first = plog.page("T1", None, None, after_seq=0, limit=4)
    second = plog.page("T1", None, None, after_seq=first[-1]["cursor"], limit=4)
    third = plog.page("T1", None, None, after_seq=second[-1]["cursor"], limit=4)
    assert len(first) == 4 and len(second) == 2 and third == []
    assert [p["cursor"] for p in first + second] == cursors

    assert plog.page("nope", None, None, after_seq=0, limit=10) == []


def test_page_is_scoped_to_the_service(
    database_url: str, metrics: ServiceMetrics, plog: PredictionLog
) -> None:
    other = PredictionLog(make_engine(database_url), "other", ServiceMetrics("other"))
    try:
        other.submit([record("T1")])
        other.flush()
        assert plog.page("T1", None, None, after_seq=0, limit=10) == []
        assert len(other.page("T1", None, None, after_seq=0, limit=10)) == 1
    finally:
        other.close()


def test_services_starting_together_create_the_schema_once(database_url: str) -> None:
    """Five services sharing one database (compose, Kubernetes) start at the same moment: every
    one's ensure_schema succeeds and the tables exist once. (Threads here; separate processes in
    test_prediction_migrations.py.)"""
    import threading

    from sqlalchemy import inspect

    from vigie.io.prediction_log import ensure_schema

    engines = [make_engine(database_url) for _ in range(5)]
    start, failures = threading.Barrier(len(engines)), []

    def boot(engine: Engine) -> None:
        start.wait()
        try:
            ensure_schema(engine)
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=boot, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert "predictions" in inspect(engines[0]).get_table_names()
    for e in engines:
        e.dispose()


def test_a_backlog_over_the_bound_makes_requests_wait_for_the_writer(
    database_url: str, metrics: ServiceMetrics
) -> None:
    import asyncio

    from vigie.contract.errors import ServiceUnavailable

    log = PredictionLog(make_engine(database_url), SERVICE, metrics, flush_interval_s=5)
    try:
        log.submit([record(at=T0 + timedelta(minutes=i)) for i in range(1500)])
        assert log.backlog == 1500
        asyncio.run(log.room(2000, timeout_s=0.1))  # under the bound: no wait
        with pytest.raises(ServiceUnavailable, match="1500 predictions behind") as refused:
            asyncio.run(log.room(1000, timeout_s=0.2))  # no writer running: refused in time
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        log.start()  # the writer catches up; the waiting request goes on
        asyncio.run(log.room(1000, timeout_s=10))
        assert log.backlog < 1000
    finally:
        log.close()
    assert count(log, PredictionRow) == 1500
