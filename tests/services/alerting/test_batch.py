"""Level events applied a batch at a time (SQLite and PostgreSQL): the same outcomes, rows and
metrics as applying them one by one, with duplicates, stale events, transitions in the middle of
same-level runs, interleaved assets, invalid entries, failing batches and redelivery after a crash
before XACK; and the retention of ``processed_events``."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.support.servers import RedisServer, free_port
from vigie.contract.level_event import LevelEvent
from vigie_services.alerting import consumer as consumer_module
from vigie_services.alerting import housekeeping, processing
from vigie_services.alerting.consumer import Entry, LevelConsumer
from vigie_services.alerting.db import downgrade, make_engine, migrate
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.fanout import Audience
from vigie_services.alerting.housekeeping import Housekeeper
from vigie_services.alerting.metrics import AlertingMetrics
from vigie_services.alerting.models import (
    Alert,
    AssetState,
    Base,
    Delivery,
    ProcessedEvent,
    Silence,
    Subscriber,
    Transition,
)
from vigie_services.alerting.processing import Applied, apply_batch, apply_event
from vigie_services.alerting.settings import AlertingSettings
from vigie_services.alerting.upkeep import purge_processed

T0 = datetime(2026, 3, 1, 8, 0)
URL = "http://alerting.test"
SERVICES = ("turbine-nox", "transformer-temperature")
ASSETS = ("T1", "T2", "T3", "T4")
LEVELS = ("NORMAL", "ALERTE", "CRITIQUE")


def event(
    level: str, at: datetime, asset: str = "T1", service: str = SERVICES[0], **kw: Any
) -> LevelEvent:
    fields: dict[str, Any] = {
        "service": service, "asset_id": asset, "level": level,
        "observed_at": at.replace(tzinfo=UTC), "value": random.random() * 100, "unit": "mg/m3",
        "threshold": 75.0, "model_version": "v1", "message": f"{asset} {level} at {at:%H:%M}",
    }  # fmt: skip
    fields.update(kw)
    return LevelEvent.new(**fields)


def entries(*events: LevelEvent | None) -> list[Entry]:
    return [(f"{i + 1}-0", e) for i, e in enumerate(events)]


def batch(sessions: sessionmaker[Session], *events: LevelEvent, now: datetime = T0) -> list[str]:
    """Apply in one transaction; each event's outcome, with the transition kind if any."""
    with sessions.begin() as s:
        results = apply_batch(s, [(f"{i}-0", e) for i, e in enumerate(events)], now, URL)
    return [f"{r.outcome}:{r.transition.kind}" if r.transition else r.outcome for r in results]


def consumer(sessions: sessionmaker[Session], metrics: AlertingMetrics) -> LevelConsumer:
    """A consumer whose ``_apply_all`` (what runs on the database thread) is called directly."""
    settings = AlertingSettings(public_url=URL)
    return LevelConsumer(None, sessions, settings, metrics, "test", lambda: None, None)  # type: ignore[arg-type]


def counters(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


def count(s: Session, model: type[Base]) -> int:
    return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- the batch path gives what applying the events one by one gives ---------------------------


def reference_apply_all(
    sessions: sessionmaker[Session], metrics: AlertingMetrics, batch: list[Entry], now: datetime
) -> None:
    """The consumer before batching: every event through ``apply_event`` in its own savepoint,
    one transaction per batch, metrics one event at a time."""
    done: list[tuple[LevelEvent, Applied]] = []
    with sessions.begin() as session:
        audience = Audience.load(session, now)
        for sid, e in batch:
            if e is None:
                continue
            with session.begin_nested():
                done.append((e, apply_event(session, e, sid, now, URL, audience)))
    m = metrics
    m.events.labels("invalid").inc(sum(e is None for _sid, e in batch))
    for e, result in done:
        m.events.labels(result.outcome).inc()
        for channel in result.suppressed:
            m.notifications.labels(channel, "suppressed").inc()
        t = result.transition
        if t is None:
            continue
        m.transitions.labels(e.service, t.kind, t.to_level).inc()
        if t.kind == "opened":
            m.opened.labels(e.service, t.to_level).inc()
        elif t.kind == "resolved":
            m.resolved.labels(e.service, t.from_level or "").inc()


def stream(seed: int, n: int) -> list[Entry]:
    """A level stream over 8 assets: mostly repeats of the asset's level, some changes (some at
    the very time of the state), stale events, redelivered events and invalid entries."""
    rng = random.Random(seed)
    random.seed(seed)  # the events' values
    level = {(s, a): "NORMAL" for s in SERVICES for a in ASSETS}
    level[(SERVICES[0], "T9")] = "ALERTE"  # seeded state without an alert (predates the table)
    clock = dict.fromkeys(level, T0)
    out: list[LevelEvent | None] = []
    for _ in range(n):
        draw = rng.random()
        key = rng.choice(sorted(level))
        service, asset = key
        if draw < 0.03:
            out.append(None)
        elif draw < 0.08 and any(out):
            out.append(rng.choice([e for e in out[-60:] if e is not None]))
        elif draw < 0.12:  # older than what is known: history
            at = clock[key] - timedelta(minutes=rng.randint(1, 90))
            out.append(event(rng.choice(LEVELS), at, asset, service))
        elif draw < 0.14:  # a change observed at the very time of the state: not stale
            level[key] = rng.choice([lv for lv in LEVELS if lv != level[key]])
            out.append(event(level[key], clock[key], asset, service))
        else:
            clock[key] += timedelta(minutes=rng.randint(1, 20))
            if draw > 0.88:
                level[key] = rng.choice([lv for lv in LEVELS if lv != level[key]])
            out.append(event(level[key], clock[key], asset, service))
    return entries(*out)


def seed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        subscribers: list[tuple[str, str, dict[str, Any]]] = [
            ("all", "NORMAL", {}),
            ("critique-only", "CRITIQUE", {}),
            ("t1-only", "ALERTE", {"assets": ["T1"]}),
            ("transformer-email", "NORMAL", {"services": [SERVICES[1]], "channel": "email"}),
        ]
        for name, min_level, kw in subscribers:
            s.add(
                Subscriber(
                    name=name, channel=kw.get("channel", "webhook"), target="x",
                    services=kw.get("services"), assets=kw.get("assets"), min_level=min_level,
                    language="en", enabled=True, created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
        s.add_all(
            [
                Silence(
                    service=SERVICES[0], asset_id="T2", level=None, starts_at=T0,
                    ends_at=T0 + timedelta(hours=6), author="ops", comment="maintenance",
                    created_at=T0,
                ),
                Silence(
                    service=None, asset_id="T3", level="CRITIQUE",
                    starts_at=T0 + timedelta(hours=3), ends_at=T0 + timedelta(hours=9),
                    author="ops", comment="sensor", created_at=T0,
                ),
                AssetState(
                    service=SERVICES[0], asset_id="T9", level="ALERTE", since=T0, observed_at=T0,
                    open_alert_id=None, last_event_id="legacy", updated_at=T0,
                ),
            ]
        )  # fmt: skip


def snapshot(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    with sessions() as s:
        return {
            t.name: [tuple(r) for r in s.execute(select(t).order_by(*t.primary_key.columns))]
            for t in Base.metadata.sorted_tables
        }


def run(
    database_url: str,
    batches: list[list[Entry]],
    apply: Any,
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[Any, float]]:
    downgrade(database_url, "base")
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        sessions = sessionmaker(engine, expire_on_commit=False)
        seed(sessions)
        registry = CollectorRegistry()
        metrics = AlertingMetrics(registry)
        for i, b in enumerate(batches):
            apply(sessions, metrics, b, T0 + timedelta(minutes=10 * i))
        return snapshot(sessions), counters(registry)
    finally:
        engine.dispose()


@pytest.mark.parametrize("size", [1, 7, 60, 500])
def test_batches_give_exactly_what_events_one_by_one_give(
    database_url: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = stream(seed=size, n=700)
    batches = []
    for i, start in enumerate(range(0, len(entries), size)):
        batches.append(entries[start : start + size])
        if i % 3 == 1:  # committed, then the process died before XACK: read again
            batches.append(entries[start : start + size])

    clock: dict[str, datetime] = {}

    def batched(
        sessions: sessionmaker[Session], metrics: AlertingMetrics, b: list[Entry], now: datetime
    ) -> None:
        clock["now"] = now
        consumer(sessions, metrics)._apply_all(b)

    monkeypatch.setattr(consumer_module, "utcnow", lambda: clock["now"])
    want_rows, want_metrics = run(database_url, batches, reference_apply_all)
    got_rows, got_metrics = run(database_url, batches, batched)

    assert got_metrics == want_metrics
    for table, rows in want_rows.items():
        assert got_rows[table] == rows, table
    # The stream exercised what it should have.
    outcomes = {dict(k[1]).get("outcome"): v for k, v in want_metrics.items() if "events" in k[0]}
    assert {"applied", "duplicate", "stale", "invalid"} <= {o for o, n in outcomes.items() if n}
    reason = Delivery.__table__.c.keys().index("reason")
    kind = Transition.__table__.c.keys().index("kind")
    reasons = " ".join(str(d[reason]) for d in want_rows["deliveries"])
    assert "silenced by" in reasons and "inhibited by" in reasons
    kinds = {t[kind] for t in want_rows["transitions"]}
    assert kinds == {"opened", "escalated", "de-escalated", "resolved"}


# --- what a batch does, case by case -----------------------------------------------------------


def test_a_transition_amid_same_level_events_of_one_asset(sessions: sessionmaker[Session]) -> None:
    h = [T0 + timedelta(minutes=m) for m in range(8)]
    events = [event("NORMAL", h[0]), event("NORMAL", h[1]), event("ALERTE", h[2])]
    events += [event("ALERTE", h[i]) for i in range(3, 8)]
    assert batch(sessions, *events) == ["applied"] * 2 + ["applied:opened"] + ["applied"] * 5
    last = events[-1]
    with sessions() as s:
        [t] = s.scalars(select(Transition)).all()
        assert (t.kind, t.event_id, t.observed_at) == ("opened", events[2].event_id, h[2])
        alert = s.scalars(select(Alert)).one()  # refreshed by the newest same-level event
        assert (alert.value, alert.message, alert.status) == (last.value, last.message, "open")
        state = s.get(AssetState, (SERVICES[0], "T1"))
        assert state is not None
        assert (state.level, state.since, state.observed_at) == ("ALERTE", h[2], h[7])
        assert (state.last_event_id, state.open_alert_id) == (last.event_id, alert.id)
        assert count(s, ProcessedEvent) == 8


def test_duplicates_within_a_batch_and_across_batches(sessions: sessionmaker[Session]) -> None:
    e1, e2, e3, e4 = (
        event("ALERTE" if i else "NORMAL", T0 + timedelta(minutes=i)) for i in range(4)
    )
    assert batch(sessions, e1, e2, e1, e3, e2) == [
        "applied", "applied:opened", "duplicate", "applied", "duplicate",
    ]  # fmt: skip
    assert batch(sessions, e3, e4, e1, e4) == ["duplicate", "applied", "duplicate", "duplicate"]
    with sessions() as s:
        assert count(s, ProcessedEvent) == 4
        assert count(s, Transition) == 1
        state = s.get(AssetState, (SERVICES[0], "T1"))
        assert state is not None and state.last_event_id == e4.event_id


def test_stale_events_in_a_batch_are_history(sessions: sessionmaker[Session]) -> None:
    ten, nine = T0 + timedelta(hours=2), T0 + timedelta(hours=1)
    newer, older, same_time = event("ALERTE", ten), event("CRITIQUE", nine), event("NORMAL", ten)
    assert batch(sessions, newer, older, same_time) == [
        "applied:opened", "stale", "applied:resolved",
    ]  # fmt: skip
    assert batch(sessions, older, event("ALERTE", nine)) == ["duplicate", "stale"]
    with sessions() as s:
        state = s.get(AssetState, (SERVICES[0], "T1"))
        assert state is not None and (state.level, state.observed_at) == ("NORMAL", ten)
        assert s.scalars(select(Transition.kind).order_by(Transition.id)).all() == [
            "opened",
            "resolved",
        ]
        assert count(s, ProcessedEvent) == 4  # a stale event is processed: a repeat is a duplicate


def test_interleaved_assets_and_invalid_entries(sessions: sessionmaker[Session]) -> None:
    registry = CollectorRegistry()
    levels = {
        "T1": ["NORMAL", "ALERTE", "ALERTE", "CRITIQUE", "CRITIQUE", "NORMAL"],
        "T2": ["ALERTE", "ALERTE", "ALERTE", "ALERTE", "NORMAL", "NORMAL"],
        "T3": ["NORMAL"] * 6,
    }
    stream: list[LevelEvent | None] = []
    for i in range(6):
        for asset, lv in levels.items():
            stream.append(event(lv[i], T0 + timedelta(minutes=i), asset))
        stream.append(None)
    assert consumer(sessions, AlertingMetrics(registry))._apply_all(entries(*stream)) == 5
    with sessions() as s:
        got = s.execute(
            select(Alert.asset_id, Transition.kind)
            .join(Alert, Alert.id == Transition.alert_id)
            .order_by(Transition.id)
        ).all()
        assert [tuple(r) for r in got] == [
            ("T2", "opened"), ("T1", "opened"), ("T1", "escalated"), ("T2", "resolved"),
            ("T1", "resolved"),
        ]  # fmt: skip
        states = {st.asset_id: st.level for st in s.scalars(select(AssetState))}
        assert states == {"T1": "NORMAL", "T2": "NORMAL", "T3": "NORMAL"}
    metrics = counters(registry)
    events = "vigie_alerting_level_events_total"
    assert metrics[(events, (("outcome", "applied"),))] == 18
    assert metrics[(events, (("outcome", "invalid"),))] == 6
    opened = ("vigie_alerts_opened_total", (("level", "ALERTE"), ("service", SERVICES[0])))
    assert metrics[opened] == 2


def test_a_batch_waiting_for_the_locks_of_the_same_batch_finds_duplicates(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    """Two consumers given the same entries (one claimed them from the other): the second waits
    for the asset rows the first locked, then sees its committed ids (PostgreSQL row locks)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks: PostgreSQL")
    assert batch(sessions, event("NORMAL", T0)) == ["applied"]  # the state row exists
    events = [event(lv, T0 + timedelta(minutes=i + 1)) for i, lv in enumerate(["ALERTE"] * 3)]
    second: dict[str, list[str]] = {}
    with sessions.begin() as s:
        first = apply_batch(s, [("1-0", e) for e in events], T0, URL)
        thread = threading.Thread(target=lambda: second.update(r=batch(sessions, *events)))
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the row lock
    thread.join(10)
    assert [r.outcome for r in first] == ["applied"] * 3
    assert second["r"] == ["duplicate"] * 3
    with sessions() as s:
        assert count(s, Transition) == 1 and count(s, ProcessedEvent) == 4


TABLES = (ProcessedEvent, AssetState, Alert, Transition, Delivery)


def test_a_failing_batch_commits_nothing_and_is_applied_when_read_again(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions.begin() as s:
        s.add(
            Subscriber(
                name="oncall", channel="webhook", target="x", services=None, assets=None,
                min_level="NORMAL", language="en", enabled=True, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    t1 = [event("ALERTE", T0 + timedelta(minutes=i), "T1") for i in range(3)]
    t2 = [
        event(lv, T0 + timedelta(minutes=i), "T2")
        for i, lv in enumerate(["NORMAL"] * 2 + ["CRITIQUE"])
    ]
    stream = entries(*t1, *t2)
    fan_out = processing.fan_out
    calls = {"n": 0}

    def failing_fan_out(*args: Any, **kw: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database hiccup")
        return fan_out(*args, **kw)

    registry = CollectorRegistry()
    c = consumer(sessions, AlertingMetrics(registry))
    monkeypatch.setattr(processing, "fan_out", failing_fan_out)
    with pytest.raises(RuntimeError, match="hiccup"):
        c._apply_all(stream)
    with sessions() as s:  # the first transition was rolled back with the rest
        assert [count(s, m) for m in TABLES] == [0, 0, 0, 0, 0]
    assert not any(counters(registry).values())

    monkeypatch.setattr(processing, "fan_out", fan_out)
    assert c._apply_all(stream) == 2  # read again (never acknowledged): applied in full
    with sessions() as s:
        assert [count(s, m) for m in TABLES] == [6, 2, 2, 2, 2]
    assert counters(registry)[("vigie_alerting_level_events_total", (("outcome", "applied"),))] == 6


@pytest.mark.integration
def test_redelivery_after_a_crash_before_xack(
    sessions: sessionmaker[Session], redis_server: RedisServer
) -> None:
    """Consumer A commits a batch and dies before XACK; B (same name) re-reads its pending
    entries first: duplicates, nothing applied twice, then the rest; everything acknowledged."""
    settings = AlertingSettings(redis_url=redis_server.url, read_batch=50, public_url=URL)
    first = [
        event("ALERTE" if i % 20 == 10 else "NORMAL", T0 + timedelta(minutes=i), f"T{i % 3}")
        for i in range(80)
    ]
    later = [event("CRITIQUE", T0 + timedelta(hours=5), "T0")]
    sync = redis_server.client()
    for e in first:
        sync.xadd("vigie:levels", {"event": e.to_json()})
    sync.xadd("vigie:levels", {"event": b"{not json"})
    registry = CollectorRegistry()
    metrics = AlertingMetrics(registry)
    commits: list[int] = []

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        db = DatabaseThread()
        try:
            a = LevelConsumer(client, sessions, settings, AlertingMetrics(CollectorRegistry()),
                              "alerting-1", lambda: None, db)  # fmt: skip
            await a.ensure_group()
            read = await a._read(">", block_ms=None)
            assert len(read) == 50
            await db.call(a._apply_all, read)  # committed; then the process dies: no XACK
            for e in later:
                sync.xadd("vigie:levels", {"event": e.to_json()})
            b = LevelConsumer(client, sessions, settings, metrics, "alerting-1",
                              lambda: commits.append(1), db)  # fmt: skip
            task = asyncio.create_task(b.run())
            for _ in range(200):
                group = (await client.xinfo_groups("vigie:levels"))[0]
                if group["pending"] == 0 and group["entries-read"] == len(first) + 1 + len(later):
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert group["pending"] == 0
        finally:
            await client.aclose()
            db.shutdown()

    asyncio.run(scenario())
    got = counters(registry)
    events = "vigie_alerting_level_events_total"
    assert got[(events, (("outcome", "duplicate"),))] == 50
    assert got[(events, (("outcome", "applied"),))] == len(first) - 50 + len(later)
    assert got[(events, (("outcome", "invalid"),))] == 1
    assert commits  # the later CRITIQUE opened an alert: the outbox was woken
    with sessions() as s:
        assert count(s, ProcessedEvent) == len(first) + len(later)
        kinds = s.scalars(select(Transition.kind).order_by(Transition.id)).all()
        assert (kinds.count("opened"), kinds.count("resolved"), count(s, Alert)) == (5, 4, 5)


# --- retention ---------------------------------------------------------------------------------


def processed(s: Session, event_id: str, at: datetime) -> None:
    s.add(
        ProcessedEvent(
            event_id=event_id, stream_id="1-0", service="svc", asset_id="A", level="NORMAL",
            emitted_at=at, processed_at=at,
        )
    )  # fmt: skip


def test_purge_forgets_the_oldest_ids_a_bounded_chunk_at_a_time(
    sessions: sessionmaker[Session],
) -> None:
    cutoff = T0
    with sessions.begin() as s:
        for i in range(10):
            processed(s, f"old-{i}", cutoff - timedelta(days=1, minutes=i))
        for i in range(3):
            processed(s, f"new-{i}", cutoff + timedelta(minutes=i))
        processed(s, "at-cutoff", cutoff)
    with sessions.begin() as s:
        assert purge_processed(s, cutoff, limit=4) == 4
    with sessions() as s:
        left = set(s.scalars(select(ProcessedEvent.event_id)))
    assert left == {*(f"old-{i}" for i in range(6)), "new-0", "new-1", "new-2", "at-cutoff"}
    with sessions.begin() as s:
        assert purge_processed(s, cutoff, limit=4) == 4
    with sessions.begin() as s:
        assert purge_processed(s, cutoff, limit=4) == 2
    with sessions.begin() as s:
        assert purge_processed(s, cutoff, limit=4) == 0
        assert set(s.scalars(select(ProcessedEvent.event_id))) == {
            "new-0", "new-1", "new-2", "at-cutoff",
        }  # fmt: skip


def test_housekeeping_applies_the_retention(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "PURGE_CHUNK", 3)
    settings = AlertingSettings(
        processed_retention_s=7 * 86_400, reminder_check_s=0.05,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nobody there: gauges are skipped
    )  # fmt: skip
    now = processing.utcnow()
    with sessions.begin() as s:
        for i in range(10):
            processed(s, f"old-{i}", now - timedelta(days=8, minutes=i))
        processed(s, "recent", now - timedelta(days=6))
    assert settings.processed_retention_s == 7 * 86_400

    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.2)
        db = DatabaseThread()
        keeper = Housekeeper(client, sessions, settings, AlertingMetrics(CollectorRegistry()),
                             lambda: None, db)  # fmt: skip
        try:
            assert await keeper.purge_processed() == 10  # 3 + 3 + 3 + 1: four transactions
            with sessions.begin() as s:
                processed(s, "old-again", now - timedelta(days=9))
            task = asyncio.create_task(keeper.run())  # and its periodic loop does it too
            for _ in range(100):
                with sessions() as s:
                    if count(s, ProcessedEvent) == 1:
                        break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await client.aclose()
            db.shutdown()

    asyncio.run(scenario())
    with sessions() as s:
        assert s.scalars(select(ProcessedEvent.event_id)).all() == ["recent"]


def test_retention_setting_is_bounded() -> None:
    assert AlertingSettings().processed_retention_s == 7 * 86_400
    assert AlertingSettings().read_batch >= 500
    with pytest.raises(ValueError, match="processed_retention_s"):
        AlertingSettings(processed_retention_s=60)


@pytest.mark.integration
@pytest.mark.parametrize("linger_ms", [0, 200])
def test_a_steady_trickle_is_applied_in_batches_when_lingering(
    sessions: sessionmaker[Session], redis_server: RedisServer, linger_ms: int
) -> None:
    """60 events, one every 10 ms (the level stream of a busy service): without lingering the
    consumer commits about one batch per event; lingering 200 ms gathers them in a few."""
    settings = AlertingSettings(
        redis_url=redis_server.url, read_linger_ms=linger_ms, public_url=URL
    )
    sync = redis_server.client()
    registry = CollectorRegistry()

    async def scenario() -> int:
        client = aioredis.Redis.from_url(redis_server.url)
        db = DatabaseThread()
        try:
            c = LevelConsumer(client, sessions, settings, AlertingMetrics(registry), "alerting-1",
                              lambda: None, db)  # fmt: skip
            await c.ensure_group()
            task = asyncio.create_task(c.run())
            for i in range(60):
                e = event("NORMAL", T0 + timedelta(seconds=i), "T1")
                sync.xadd("vigie:levels", {"event": e.to_json()})
                await asyncio.sleep(0.01)
            for _ in range(200):
                group = (await client.xinfo_groups("vigie:levels"))[0]
                if group["pending"] == 0 and group["entries-read"] == 60:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return c.batches
        finally:
            await client.aclose()
            db.shutdown()

    batches = asyncio.run(scenario())
    assert (
        counters(registry)[("vigie_alerting_level_events_total", (("outcome", "applied"),))] == 60
    )
    if linger_ms:
        assert batches <= 8
    else:
        assert batches >= 20
