"""FeedbackStore on SQLite and a real PostgreSQL: observations matched to the forecast points the
prediction log wrote, live skill per asset (the feedback answer) and per target and horizon
(/metrics, whose labels never name an asset)."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlalchemy import select

from tests.shared.io.records import SERVICE, T0, record
from vigie.io import feedback as feedback_module
from vigie.io.feedback import FeedbackStore, Observation
from vigie.io.prediction_log import ForecastPoint, PredictionLog, make_engine
from vigie.io.prediction_tables import ForecastPointRow, ObservationRow
from vigie.obs.metrics import ServiceMetrics

LIVE_SKILL = ("vigie_feedback_observations_total", "vigie_feedback_abs_error_total",
              "vigie_live_mae")  # fmt: skip


@pytest.fixture
def store(plog: PredictionLog, metrics: ServiceMetrics) -> FeedbackStore:
    # What the serve layer builds next to its prediction log.
    return FeedbackStore(plog.engine, SERVICE, metrics, flush_predictions=plog.flush)


def sample(metrics: ServiceMetrics, name: str, target: str, horizon: str) -> float | None:
    labels = {"service": SERVICE, "target": target, "horizon": horizon}
    return metrics.registry.get_sample_value(name, labels)


def live_skill_labels(metrics: ServiceMetrics) -> set[frozenset[str]]:
    """The label names of every live-skill sample exported."""
    return {
        frozenset(s.labels)
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name in LIVE_SKILL
    }


def test_observations_are_matched_stored_and_give_live_skill(
    plog: PredictionLog, store: FeedbackStore, metrics: ServiceMetrics
) -> None:
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    plog.submit(
        [
            record(
                "T1",
                T0,
                [ForecastPoint("temp", "1h", t1, 70.0), ForecastPoint("temp", "2h", t2, 80.0)],
            ),
            # A later prediction also forecasting t2, at a shorter horizon.
            record("T1", t1, [ForecastPoint("temp", "1h", t2, 77.0)]),
            # Another asset with a point at t1 must not be touched by T1's observations.
            record("T2", T0, [ForecastPoint("temp", "1h", t1, 10.0)]),
        ]
    )
    # Not flushed on purpose: the store flushes the log first, so queued predictions match too.
    results = store.record_observations(
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
    # Each result carries the stored predictions it was matched to (what `learn` receives).
    assert [p["asset"] for p in results[1].predictions] == ["T1", "T1"]
    assert results[0].value == 73.0

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

    assert sample(metrics, "vigie_feedback_observations_total", "temp", "1h") == 2
    assert sample(metrics, "vigie_feedback_observations_total", "temp", "2h") == 1
    assert sample(metrics, "vigie_feedback_abs_error_total", "temp", "1h") == 4.0
    assert sample(metrics, "vigie_feedback_abs_error_total", "temp", "2h") == 2.0
    assert sample(metrics, "vigie_live_mae", "temp", "1h") == pytest.approx(2.0)
    assert sample(metrics, "vigie_live_mae", "temp", "2h") == pytest.approx(2.0)
    assert sample(metrics, "vigie_feedback_observations_total", "humidity", "1h") is None
    assert store.live_mae("T1") == pytest.approx({"1h": 2.0, "2h": 2.0})
    assert store.live_mae("T2") == {}

    # T2's truth: /metrics aggregates every asset of the target and horizon, the answer per
    # asset stays the asset's own.
    [t2_result] = store.record_observations("T2", [Observation("temp", t1, 14.0)], "s")
    assert t2_result.matched == 1
    assert sample(metrics, "vigie_feedback_observations_total", "temp", "1h") == 3
    assert sample(metrics, "vigie_live_mae", "temp", "1h") == pytest.approx((3 + 1 + 4) / 3)
    assert store.live_mae("T2") == pytest.approx({"1h": 4.0})
    assert store.live_mae("T1") == pytest.approx({"1h": 2.0, "2h": 2.0})
    assert live_skill_labels(metrics) == {frozenset({"service", "target", "horizon"})}


def test_live_mae_is_over_the_most_recent_observed_forecasts(
    plog: PredictionLog,
    store: FeedbackStore,
    metrics: ServiceMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feedback_module, "MAE_WINDOW", 2)
    times = [T0 + timedelta(hours=h) for h in range(1, 4)]
    plog.submit([record("T1", T0, [ForecastPoint("temp", "1h", t, 50.0)]) for t in times])
    # Sent newest first: the window is by the time forecast, not the order truth arrived in.
    store.record_observations(
        "T1", [Observation("temp", times[2], 51.0), Observation("temp", times[1], 51.0)], "s"
    )
    store.record_observations("T1", [Observation("temp", times[0], 60.0)], "s")  # the oldest

    assert store.live_mae("T1") == pytest.approx({"1h": 1.0})
    assert sample(metrics, "vigie_live_mae", "temp", "1h") == pytest.approx(1.0)
    assert sample(metrics, "vigie_feedback_abs_error_total", "temp", "1h") == 12.0


def test_observation_in_another_offset_matches_the_same_instant(
    plog: PredictionLog, store: FeedbackStore, metrics: ServiceMetrics
) -> None:
    target_time = T0 + timedelta(hours=1)  # 13:00Z
    plog.submit([record("T1", T0, [ForecastPoint("temp", "1h", target_time, 60.0)])])
    plog.flush()
    paris = timezone(timedelta(hours=2))
    observed_at = target_time.astimezone(paris)  # 15:00+02:00, same instant
    assert observed_at.hour == 15

    [result] = store.record_observations("T1", [Observation("temp", observed_at, 61.5)], "s")
    assert result.matched == 1
    assert sample(metrics, "vigie_feedback_observations_total", "temp", "1h") == 1
    assert sample(metrics, "vigie_live_mae", "temp", "1h") == pytest.approx(1.5)

    # A naive 15:00 is 15:00 UTC: a different instant, so it matches nothing.
    [naive] = store.record_observations(
        "T1", [Observation("temp", observed_at.replace(tzinfo=None), 61.5)], "s"
    )
    assert naive.matched == 0


def test_points_submitted_with_an_offset_are_matched_by_utc(
    plog: PredictionLog, store: FeedbackStore
) -> None:
    tokyo = timezone(timedelta(hours=9))
    target_time = (T0 + timedelta(hours=3)).astimezone(tokyo)
    plog.submit([record("T1", T0, [ForecastPoint("temp", "3h", target_time, 5.0)])])
    [result] = store.record_observations(
        "T1", [Observation("temp", T0 + timedelta(hours=3), 7.0)], "s"
    )
    assert result.matched == 1
    assert store.live_mae("T1") == pytest.approx({"3h": 2.0})


def test_another_services_forecasts_are_not_matched(
    database_url: str, plog: PredictionLog, store: FeedbackStore
) -> None:
    other = PredictionLog(make_engine(database_url), "other", ServiceMetrics("other"))
    try:
        t1 = T0 + timedelta(hours=1)
        other.submit([record("T1", T0, [ForecastPoint("temp", "1h", t1, 70.0)])])
        other.flush()
        [result] = store.record_observations("T1", [Observation("temp", t1, 71.0)], "s")
        assert result.matched == 0
        assert store.live_mae("T1") == {}
    finally:
        other.close()
