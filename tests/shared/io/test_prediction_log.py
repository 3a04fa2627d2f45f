"""PredictionLog on SQLite and a real PostgreSQL: batched writes, paging, observed truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select

from tests.support.servers import wait_until
from vigie.io.prediction_log import (
    ForecastPoint,
    ForecastPointRow,
    Observation,
    ObservationRow,
    PredictionLog,
    PredictionRecord,
    PredictionRow,
    make_engine,
)
from vigie.obs.metrics import ServiceMetrics

SERVICE = "svc"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(SERVICE)


@pytest.fixture
def plog(database_url: str, metrics: ServiceMetrics) -> Iterator[PredictionLog]:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics)
    yield log
    log.close()


def record(
    asset: str = "T1",
    at: datetime = T0,
    *,
    points: list[ForecastPoint] | None = None,
    level: str = "NORMAL",
) -> PredictionRecord:
    return PredictionRecord(
        prediction_id=str(uuid.uuid4()),
        asset_id=asset,
        timestamp=at,
        request_id="req-1",
        model_version="2024-01-01T00-00-00Z-abcdef",
        level=level,
        measurement={"load": 0.8},
        prediction={"temp_1h": 71.5},
        points=points or [],
    )


def count(log: PredictionLog, table: type) -> int:
    with log.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def sample(metrics: ServiceMetrics, name: str, asset: str, horizon: str) -> float | None:
    labels = {"service": SERVICE, "asset": asset, "horizon": horizon}
    return metrics.registry.get_sample_value(name, labels)


def abs_error_sum(metrics: ServiceMetrics, asset: str, horizon: str) -> float | None:
    """The summed-error counter's value, whatever its exported name."""
    labels = {"service": SERVICE, "asset": asset, "horizon": horizon}
    for family in metrics.feedback_abs_error.collect():
        for s in family.samples:
            if s.name.endswith("_total") and s.labels == labels:
                return float(s.value)
    return None


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
        # Read through a separate engine so nothing here calls flush().
        reader = make_engine(database_url)
        try:

            def written() -> bool:
                with reader.connect() as conn:
                    n = conn.execute(select(func.count()).select_from(PredictionRow)).scalar_one()
                return n == 2

            wait_until(written, timeout=5, what="the writer thread to write 2 rows")
        finally:
            reader.dispose()
    finally:
        log.close()


def test_writer_thread_wakes_early_when_a_batch_is_full(
    database_url: str, metrics: ServiceMetrics
) -> None:
    # A long interval: only the batch-size wake-up can get the rows written in time.
    log = PredictionLog(
        make_engine(database_url), SERVICE, metrics, flush_interval_s=30, batch_size=3
    )
    log.start()
    try:
        reader = make_engine(database_url)
        try:
            log.submit([record() for _ in range(3)])

            def written() -> bool:
                with reader.connect() as conn:
                    n = conn.execute(select(func.count()).select_from(PredictionRow)).scalar_one()
                return n == 3

            wait_until(written, timeout=5, what="the full batch to be written")
        finally:
            reader.dispose()
    finally:
        log.close()


def test_close_flushes_the_queue(database_url: str, metrics: ServiceMetrics) -> None:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics, flush_interval_s=30)
    log.start()
    log.submit([record(), record(), record()])
    log.close()
    check = PredictionLog(make_engine(database_url), SERVICE, metrics)
    try:
        assert count(check, PredictionRow) == 3
    finally:
        check.close()


def test_close_without_start_flushes_too(database_url: str, metrics: ServiceMetrics) -> None:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics)
    log.submit([record()])
    log.close()
    check = PredictionLog(make_engine(database_url), SERVICE, metrics)
    try:
        assert count(check, PredictionRow) == 1
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
    assert everything[0]["prediction"] == {"temp_1h": 71.5}
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


def test_record_observations_matches_points_and_updates_metrics(
    plog: PredictionLog, metrics: ServiceMetrics
) -> None:
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    plog.submit(
        [
            record(
                "T1",
                points=[
                    ForecastPoint("temp", "1h", t1, 70.0),
                    ForecastPoint("temp", "2h", t2, 80.0),
                ],
            ),
            # A later prediction also forecasting t2, at a shorter horizon.
            record("T1", T0 + timedelta(hours=1), points=[ForecastPoint("temp", "1h", t2, 77.0)]),
            # Another asset with a point at t1 must not be touched.
            record("T2", points=[ForecastPoint("temp", "1h", t1, 10.0)]),
        ]
    )
    # Not flushed on purpose: record_observations must see queued predictions too.
    results = plog.record_observations(
        "T1",
        [
            Observation("temp", t1, 73.0),  # matches 1 point: |73-70| = 3
            Observation("temp", t2, 78.0),  # matches 2 points: |78-80| = 2, |78-77| = 1
            Observation("temp", T0 + timedelta(hours=9), 1.0),  # no forecast about this time
            Observation("humidity", t1, 50.0),  # wrong target
        ],
        subject="sensor-gw",
    )
    assert [(r.target, r.matched) for r in results] == [
        ("temp", 1),
        ("temp", 2),
        ("temp", 0),
        ("humidity", 0),
    ]

    with plog.engine.connect() as conn:
        points = conn.execute(
            select(
                ForecastPointRow.asset_id,
                ForecastPointRow.horizon,
                ForecastPointRow.target_time,
                ForecastPointRow.observed,
                ForecastPointRow.abs_error,
                ForecastPointRow.observed_at,
            ).order_by(ForecastPointRow.id)
        ).all()
        observations = conn.execute(
            select(ObservationRow.target, ObservationRow.matched, ObservationRow.subject).order_by(
                ObservationRow.id
            )
        ).all()
    by_key = {(a, h, t): (obs, err, at) for a, h, t, obs, err, at in points}
    naive = lambda ts: ts.replace(tzinfo=None)  # noqa: E731
    assert by_key[("T1", "1h", naive(t1))][:2] == (73.0, 3.0)
    assert by_key[("T1", "2h", naive(t2))][:2] == (78.0, 2.0)
    assert by_key[("T1", "1h", naive(t2))][:2] == (78.0, 1.0)
    assert by_key[("T1", "1h", naive(t1))][2] is not None
    assert by_key[("T2", "1h", naive(t1))] == (None, None, None)
    # Every observation is stored, matched or not (unmatched ones count as 0).
    assert observations == [
        ("temp", 1, "sensor-gw"),
        ("temp", 2, "sensor-gw"),
        ("temp", 0, "sensor-gw"),
        ("humidity", 0, "sensor-gw"),
    ]

    assert sample(metrics, "vigie_feedback_observations_total", "T1", "1h") == 2
    assert sample(metrics, "vigie_feedback_observations_total", "T1", "2h") == 1
    assert abs_error_sum(metrics, "T1", "1h") == 4.0
    assert abs_error_sum(metrics, "T1", "2h") == 2.0
    assert sample(metrics, "vigie_live_mae", "T1", "1h") == pytest.approx(2.0)
    assert sample(metrics, "vigie_live_mae", "T1", "2h") == pytest.approx(2.0)
    assert sample(metrics, "vigie_feedback_observations_total", "T2", "1h") is None
    assert plog.live_mae("T1") == pytest.approx({"1h": 2.0, "2h": 2.0})
    assert plog.live_mae("T2") == {}


def test_observation_in_another_offset_matches_the_same_instant(
    plog: PredictionLog, metrics: ServiceMetrics
) -> None:
    target_time = T0 + timedelta(hours=1)  # 13:00Z
    plog.submit([record(points=[ForecastPoint("temp", "1h", target_time, 60.0)])])
    plog.flush()
    paris = timezone(timedelta(hours=2))
    observed_at = target_time.astimezone(paris)  # 15:00+02:00, same instant
    assert observed_at.hour == 15

    [result] = plog.record_observations("T1", [Observation("temp", observed_at, 61.5)], "s")
    assert result.matched == 1
    assert sample(metrics, "vigie_feedback_observations_total", "T1", "1h") == 1
    assert sample(metrics, "vigie_live_mae", "T1", "1h") == pytest.approx(1.5)

    # A naive 15:00 is 15:00 UTC: a different instant, so it matches nothing.
    [naive] = plog.record_observations(
        "T1", [Observation("temp", observed_at.replace(tzinfo=None), 61.5)], "s"
    )
    assert naive.matched == 0


def test_points_submitted_with_an_offset_are_matched_by_utc(plog: PredictionLog) -> None:
    tokyo = timezone(timedelta(hours=9))
    target_time = (T0 + timedelta(hours=3)).astimezone(tokyo)
    plog.submit([record(points=[ForecastPoint("temp", "3h", target_time, 5.0)])])
    [result] = plog.record_observations(
        "T1", [Observation("temp", T0 + timedelta(hours=3), 7.0)], "s"
    )
    assert result.matched == 1
    assert plog.live_mae("T1") == pytest.approx({"3h": 2.0})


def test_services_starting_together_create_the_schema_once(database_url: str) -> None:
    """Five services sharing one database (compose, Kubernetes) start at the same moment: every
    one's ensure_schema succeeds and the tables exist once."""
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
