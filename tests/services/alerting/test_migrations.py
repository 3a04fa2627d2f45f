"""The alerting migrations, on an empty SQLite file and an empty PostgreSQL database.

Upgrading to head must give exactly the schema of models.py (so a model change without its
migration fails here), be repeatable, be undone by a downgrade to base, and store every column
type the service relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.support.db import schema
from vigie_services.alerting import db
from vigie_services.alerting.models import (
    Alert,
    AssetState,
    Base,
    Delivery,
    DeliveryAttempt,
    ProcessedEvent,
    Silence,
    Subscriber,
    Transition,
)

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456)  # naive UTC, with microseconds


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_head_gives_exactly_the_models_schema(database_url: str, engine: Engine) -> None:
    db.migrate(database_url)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert ctx.get_current_revision() == db.head_revision()
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    indexes = {i["name"] for t in Base.metadata.tables for i in inspect(engine).get_indexes(t)}
    assert {
        "ix_alerts_status_opened",
        "ix_alerts_asset",
        "ix_deliveries_due",
        "ix_transitions_published",
    } <= indexes


def test_migrate_twice_is_a_no_op(database_url: str, engine: Engine) -> None:
    db.migrate(database_url)
    before = schema(engine)
    with Session(engine) as s:
        s.add(subscriber())
        s.commit()

    db.migrate(database_url)

    assert schema(engine) == before
    assert db.current_revision(database_url) == db.head_revision()
    with Session(engine) as s:
        assert s.scalars(select(Subscriber.name)).all() == ["ops"]


def test_downgrade_to_base_drops_everything(database_url: str, engine: Engine) -> None:
    db.migrate(database_url)
    db.downgrade(database_url, "base")

    # Only Alembic's own bookkeeping table is left, and it records no revision.
    assert inspect(engine).get_table_names() == ["alembic_version"]
    assert db.current_revision(database_url) is None

    db.migrate(database_url)  # and back up again
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}


def subscriber(**kw: Any) -> Subscriber:
    values: dict[str, Any] = {
        "name": "ops",
        "channel": "email",
        "target": "ops@example.org",
        "services": ["transformer-temperature", "pump-vibration"],
        "assets": None,
        "min_level": "ALERTE",
        "language": "fr",
        "enabled": True,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return Subscriber(**values)


def test_every_table_stores_and_returns_its_types(database_url: str, engine: Engine) -> None:
    db.migrate(database_url)
    with Session(engine) as s:
        alert = Alert(
            service="transformer-temperature",
            asset_id="T1",
            status="open",
            level="ALERTE",
            peak_level="CRITIQUE",
            opened_at=T0,
            last_notified_at=T0,
            value=98.5,
            unit="°C",
            threshold=95.0,
            message="Température huile 98,5 °C",
            model_version="2024-01-01T00-00-00Z-abcdef",
        )
        sub = subscriber()
        s.add_all([alert, sub])
        s.flush()
        transition = Transition(
            alert_id=alert.id,
            kind="opened",
            from_level="NORMAL",
            to_level="ALERTE",
            event_id="evt-1",
            at=T0,
            observed_at=T0,
            value=98.5,
            message="opened",
        )
        s.add_all(
            [
                transition,
                ProcessedEvent(
                    event_id="evt-1",
                    stream_id="1709294400000-0",
                    service="transformer-temperature",
                    asset_id="T1",
                    level="ALERTE",
                    emitted_at=T0,
                    processed_at=T0,
                ),
                AssetState(
                    service="transformer-temperature",
                    asset_id="T1",
                    level="ALERTE",
                    since=T0,
                    observed_at=T0,
                    open_alert_id=alert.id,
                    last_event_id="evt-1",
                    updated_at=T0,
                ),
                Silence(
                    service=None,
                    asset_id="T1",
                    level=None,
                    starts_at=T0,
                    ends_at=datetime(2024, 3, 2, 12, 0),
                    author="alice",
                    comment="maintenance",
                    created_at=T0,
                ),
            ]
        )
        s.flush()
        delivery = Delivery(
            transition_id=transition.id,
            alert_id=alert.id,
            subscriber_id=sub.id,
            channel="email",
            target=sub.target,
            status="pending",
            next_attempt_at=T0,
            created_at=T0,
            payload={"levels": ["NORMAL", "ALERTE"], "value": 98.5, "ack": None},
        )
        s.add(delivery)
        s.flush()
        s.add(
            DeliveryAttempt(
                delivery_id=delivery.id,
                number=1,
                at=T0,
                outcome="retrying",
                reason="timeout",
                duration_ms=12.5,
            )
        )
        s.commit()

    with Session(engine) as s:
        got = s.scalars(select(Subscriber)).one()
        assert got.services == ["transformer-temperature", "pump-vibration"]
        assert got.assets is None
        assert got.enabled is True
        assert got.created_at == T0 and got.created_at.tzinfo is None

        a = s.scalars(select(Alert)).one()
        assert (a.opened_at, a.resolved_at, a.value, a.unit) == (T0, None, 98.5, "°C")
        assert a.message == "Température huile 98,5 °C"
        t = s.scalars(select(Transition)).one()
        assert (t.alert_id, t.published, t.at) == (a.id, False, T0)
        assert s.scalars(select(ProcessedEvent.event_id)).all() == ["evt-1"]
        st = s.scalars(select(AssetState)).one()
        assert (st.open_alert_id, st.since) == (a.id, T0)
        si = s.scalars(select(Silence)).one()
        assert (si.service, si.level, si.expired_at) == (None, None, None)
        assert si.ends_at == datetime(2024, 3, 2, 12, 0)
        d = s.scalars(select(Delivery)).one()
        assert d.payload == {"levels": ["NORMAL", "ALERTE"], "value": 98.5, "ack": None}
        assert (d.attempts, d.sent_at) == (0, None)
        at = s.scalars(select(DeliveryAttempt)).one()
        assert (at.delivery_id, at.number, at.duration_ms) == (d.id, 1, 12.5)

        # The constraints are there too: one delivery per transition and subscriber, unique names.
        s.add(
            Delivery(
                transition_id=t.id,
                alert_id=a.id,
                subscriber_id=got.id,
                channel="email",
                target=got.target,
                status="pending",
                next_attempt_at=T0,
                created_at=T0,
                payload={},
            )
        )
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        s.add(subscriber())
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
