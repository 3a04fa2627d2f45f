"""The lifecycle against a real database (SQLite and PostgreSQL): transitions, fan-out,
repeat suppression, reminders, acknowledgement, silences, inhibition, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigie.contract.level_event import LevelEvent
from vigie_services.alerting.db import make_engine, migrate
from vigie_services.alerting.models import (
    Alert,
    AssetState,
    Delivery,
    Silence,
    Subscriber,
    Transition,
)
from vigie_services.alerting.processing import apply_event
from vigie_services.alerting.reminders import acknowledge, due_reminders

T0 = datetime(2026, 3, 1, 8, 0)
URL = "http://alerting.test"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


class Feed:
    """Sends level events one after the other, an hour apart, like a service would."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.n = 0

    def event(
        self, level: str, service: str = "turbine-nox", asset: str = "T1", **kw: object
    ) -> LevelEvent:
        self.n += 1
        fields = {
            "service": service, "asset_id": asset, "level": level,
            "observed_at": (T0 + timedelta(hours=self.n)).replace(tzinfo=UTC),
            "value": 70.0 + self.n, "unit": "mg/m3", "threshold": 75.0,
            "model_version": "v1", "message": f"event {self.n}",
        }  # fmt: skip
        fields.update(kw)
        return LevelEvent.new(**fields)

    def send(self, event: LevelEvent, now: datetime | None = None) -> str:
        with self.sessions.begin() as s:
            return apply_event(
                s, event, f"{self.n}-0", now or T0 + timedelta(hours=self.n), URL
            ).outcome

    def level(self, level: str, **kw: object) -> str:
        return self.send(self.event(level, **kw))


def subscriber(s: Session, name: str, min_level: str = "ALERTE", **kw: object) -> Subscriber:
    now = T0
    sub = Subscriber(
        name=name, channel=kw.pop("channel", "webhook"), target=kw.pop("target", "http://x/hook"),
        services=kw.pop("services", None), assets=kw.pop("assets", None), min_level=min_level,
        language="en", enabled=True, created_at=now, updated_at=now,
    )  # fmt: skip
    s.add(sub)
    s.flush()
    return sub


def kinds(s: Session) -> list[str]:
    return list(s.scalars(select(Transition.kind).order_by(Transition.id)))


def deliveries(s: Session, name: str) -> list[tuple[str, str]]:
    rows = s.execute(
        select(Transition.kind, Delivery.status)
        .join(Delivery, Delivery.transition_id == Transition.id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.name == name)
        .order_by(Delivery.id)
    ).all()
    return [(k, st) for k, st in rows]


def test_every_transition_once_and_repeats_notify_nobody(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        subscriber(s, "oncall")
    feed = Feed(sessions)
    for level in [
        "NORMAL",
        "ALERTE",
        "ALERTE",
        "CRITIQUE",
        "CRITIQUE",
        "ALERTE",
        "NORMAL",
        "NORMAL",
    ]:
        assert feed.level(level) == "applied"
    with sessions() as s:
        assert kinds(s) == ["opened", "escalated", "de-escalated", "resolved"]
        assert deliveries(s, "oncall") == [
            ("opened", "pending"), ("escalated", "pending"),
            ("de-escalated", "pending"), ("resolved", "pending"),
        ]  # fmt: skip
        alert = s.scalars(select(Alert)).one()
        assert (alert.status, alert.peak_level, alert.level) == ("resolved", "CRITIQUE", "NORMAL")
        state = s.get(AssetState, ("turbine-nox", "T1"))
        assert state is not None and state.level == "NORMAL" and state.open_alert_id is None


def test_a_new_episode_opens_a_new_alert(sessions: sessionmaker[Session]) -> None:
    feed = Feed(sessions)
    for level in ["ALERTE", "NORMAL", "CRITIQUE"]:
        feed.level(level)
    with sessions() as s:
        alerts = s.scalars(select(Alert).order_by(Alert.id)).all()
        assert [(a.status, a.level) for a in alerts] == [
            ("resolved", "NORMAL"),
            ("open", "CRITIQUE"),
        ]


def test_duplicate_and_stale_events_change_nothing(sessions: sessionmaker[Session]) -> None:
    feed = Feed(sessions)
    opening = feed.event("ALERTE")
    assert feed.send(opening) == "applied"
    assert feed.send(opening) == "duplicate"  # a redelivered stream entry
    feed.level("CRITIQUE")
    old = feed.event("NORMAL", observed_at=T0.replace(tzinfo=UTC))  # before what we know
    assert feed.send(old) == "stale"
    with sessions() as s:
        assert kinds(s) == ["opened", "escalated"]
        assert s.get(AssetState, ("turbine-nox", "T1")).level == "CRITIQUE"  # type: ignore[union-attr]


def test_subscribers_get_what_their_filters_and_level_ask_for(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        subscriber(s, "all", min_level="NORMAL")
        subscriber(s, "critique-only", min_level="CRITIQUE")
        subscriber(s, "other-asset", assets=["T9"])
        subscriber(s, "other-service", services=["solar-flare"])
    feed = Feed(sessions)
    for level in ["ALERTE", "CRITIQUE", "ALERTE", "NORMAL"]:
        feed.level(level)
    with sessions() as s:
        assert [k for k, _ in deliveries(s, "all")] == [
            "opened",
            "escalated",
            "de-escalated",
            "resolved",
        ]
        # never told about the ALERTE opening; told when it got critical and how it ended
        assert [k for k, _ in deliveries(s, "critique-only")] == [
            "escalated",
            "de-escalated",
            "resolved",
        ]
        assert deliveries(s, "other-asset") == [] and deliveries(s, "other-service") == []


def test_silence_suppresses_and_records_why(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        subscriber(s, "oncall")
        s.add(
            Silence(
                service="turbine-nox", asset_id="T1", level=None, starts_at=T0,
                ends_at=T0 + timedelta(hours=2, minutes=30), author="ops", comment="maintenance",
                created_at=T0,
            )
        )  # fmt: skip
    feed = Feed(sessions)
    feed.level("ALERTE")  # hour 1: silenced
    feed.level("CRITIQUE")  # hour 2: silenced
    feed.level("NORMAL")  # hour 3: the silence has ended
    with sessions() as s:
        assert deliveries(s, "oncall") == [
            ("opened", "suppressed"), ("escalated", "suppressed"), ("resolved", "pending"),
        ]  # fmt: skip
        reason = s.scalars(select(Delivery.reason).order_by(Delivery.id)).first()
        assert reason is not None and "silence #" in reason and "maintenance" in reason


def test_open_critique_inhibits_alerte_notifications_of_the_same_asset(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        subscriber(s, "oncall")
    feed = Feed(sessions)
    feed.level("CRITIQUE", service="turbine-nox", asset="T1")
    feed.level("ALERTE", service="transformer-temperature", asset="T1")  # inhibited
    feed.level("ALERTE", service="transformer-temperature", asset="T2")  # other asset: sent
    feed.level("CRITIQUE", service="transformer-temperature", asset="T1")  # CRITIQUE: sent
    with sessions() as s:
        statuses = deliveries(s, "oncall")
        assert statuses == [
            ("opened", "pending"), ("opened", "suppressed"), ("opened", "pending"),
            ("escalated", "pending"),
        ]  # fmt: skip
        reasons = [r for r in s.scalars(select(Delivery.reason)) if r]
        assert len(reasons) == 1 and "inhibited by open CRITIQUE alert" in reasons[0]


def test_reminders_until_acknowledged(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        subscriber(s, "oncall")
    feed = Feed(sessions)
    feed.level("ALERTE")  # notified at T0 + 1 h
    opened_at = T0 + timedelta(hours=1)
    interval = 3600.0
    with sessions.begin() as s:
        assert due_reminders(s, opened_at + timedelta(minutes=59), interval, URL) == []
    with sessions.begin() as s:
        assert len(due_reminders(s, opened_at + timedelta(minutes=61), interval, URL)) == 1
    with sessions.begin() as s:  # the clock restarts at the reminder
        assert due_reminders(s, opened_at + timedelta(minutes=100), interval, URL) == []
        alert = s.scalars(select(Alert)).one()
        acknowledge(s, alert, "marie", "on my way", opened_at + timedelta(minutes=110))
    with sessions.begin() as s:
        assert due_reminders(s, opened_at + timedelta(hours=5), interval, URL) == []
    with sessions() as s:
        assert kinds(s) == ["opened", "reminder", "acknowledged"]
        assert [k for k, _ in deliveries(s, "oncall")] == ["opened", "reminder"]
        alert = s.scalars(select(Alert)).one()
        assert alert.acknowledged_by == "marie" and alert.ack_comment == "on my way"


def test_escalation_clears_the_acknowledgement(sessions: sessionmaker[Session]) -> None:
    feed = Feed(sessions)
    feed.level("ALERTE")
    with sessions.begin() as s:
        acknowledge(s, s.scalars(select(Alert)).one(), "marie", "", T0)
    feed.level("CRITIQUE")
    with sessions() as s:
        assert s.scalars(select(Alert)).one().acknowledged_at is None


def test_payload_carries_what_a_notifier_needs(sessions: sessionmaker[Session]) -> None:
    from vigie_services.alerting.notifiers.base import Notification

    with sessions.begin() as s:
        subscriber(s, "oncall")
    Feed(sessions).level("CRITIQUE", value=81.2)
    with sessions() as s:
        d = s.scalars(select(Delivery)).one()
        n = Notification.from_json({**d.payload, "delivery_id": d.id})
    assert (n.kind, n.level, n.previous_level, n.value, n.unit) == (
        "opened",
        "CRITIQUE",
        "NORMAL",
        81.2,
        "mg/m3",
    )
    assert n.alert_url == f"{URL}/v1/alerts/{n.alert_id}" and n.language == "en"
