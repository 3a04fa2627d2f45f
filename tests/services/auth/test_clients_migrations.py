"""Auth's client registry through the shared migration runner, on SQLite and PostgreSQL: the
baseline is exactly the table ``create_all`` made, a registry made then keeps its clients, two
processes may upgrade at once, and one database may hold every piece's tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Boolean, DateTime, Engine, bindparam, inspect, text

from tests.shared.io.migrating_process import upgrade_at_once
from vigie.io.db import current_revision, downgrade, make_engine, upgrade
from vigie.io.prediction_migrations import MIGRATIONS as PREDICTION_LOG
from vigie_services.alerting.migrations import MIGRATIONS as ALERTING
from vigie_services.auth.clients import ClientStore, hash_secret
from vigie_services.auth.migrations import MIGRATIONS

# What ClientStore.create_schema's create_all made before there were migrations, per dialect
# (CreateTable of that code's table, captured before the change): frozen here.
LEGACY_DDL = {
    dialect: f"""CREATE TABLE auth_clients (
        client_id VARCHAR(64) NOT NULL, secret_hash VARCHAR(255) NOT NULL, scopes TEXT NOT NULL,
        created_at {created_at} NOT NULL, disabled BOOLEAN NOT NULL, PRIMARY KEY (client_id))"""
    for dialect, created_at in [
        ("sqlite", "DATETIME"),
        ("postgresql", "TIMESTAMP WITH TIME ZONE"),
    ]
}
SECRET = "s3cret-of-the-old-registry"
CREATED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_legacy_registry(engine: Engine) -> None:
    """The registry as the code before migrations left it, with one client."""
    with engine.begin() as conn:
        conn.execute(text(LEGACY_DDL[conn.dialect.name]))
        conn.execute(
            text(
                "INSERT INTO auth_clients VALUES ('scada-01', :hash, 'predict:turbine-nox',"
                " :created, :disabled)"
            ).bindparams(
                bindparam("created", type_=DateTime(timezone=True)),
                bindparam("disabled", type_=Boolean()),
            ),
            {"hash": hash_secret(SECRET), "created": CREATED, "disabled": False},
        )


def columns(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns("auth_clients")
        ],
        "pk": insp.get_pk_constraint("auth_clients")["constrained_columns"],
        "indexes": insp.get_indexes("auth_clients"),
        "uniques": insp.get_unique_constraints("auth_clients"),
    }


def test_create_schema_on_an_empty_database_gives_exactly_the_table(
    database_url: str, engine: Engine
) -> None:
    store = ClientStore(database_url)
    try:
        store.create_schema()
        store.create_schema()  # again: a no-op
        secret = store.add_client("replay", ["predict:turbine-nox"])
        assert store.verify_client("replay", secret) == frozenset({"predict:turbine-nox"})
    finally:
        store.close()
    assert current_revision(database_url, MIGRATIONS) == MIGRATIONS.head == "0001"
    assert set(inspect(engine).get_table_names()) == {"auth_clients", "alembic_version_auth"}
    with engine.connect() as conn:
        command.check(MIGRATIONS.config(conn))  # raises when the models and the schema differ


def test_the_baseline_is_exactly_the_table_create_all_made(
    database_url: str, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text(LEGACY_DDL[conn.dialect.name]))
    legacy = columns(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE auth_clients"))

    upgrade(database_url, MIGRATIONS, "0001")

    assert columns(engine) == legacy


def test_a_registry_made_before_migrations_keeps_its_clients(
    database_url: str, engine: Engine
) -> None:
    make_legacy_registry(engine)

    store = ClientStore(database_url)
    try:
        store.create_schema()  # what auth's preparation and `vigie clients` do first
        assert store.verify_client("scada-01", SECRET) == frozenset({"predict:turbine-nox"})
        [old] = store.list_clients()
        assert (old.client_id, old.created_at.replace(tzinfo=UTC), old.disabled) == (
            "scada-01", CREATED, False,
        )  # fmt: skip
    finally:
        store.close()
    assert current_revision(database_url, MIGRATIONS) == MIGRATIONS.head


def test_two_processes_upgrading_an_old_registry_at_once(database_url: str, engine: Engine) -> None:
    make_legacy_registry(engine)

    outcomes = upgrade_at_once(database_url, "vigie_services.auth.migrations:MIGRATIONS")

    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert sorted(o[3] for o in outcomes) == [False, True]  # one stamped, one found it done
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version_auth")).all() == [
            ("0001",)
        ]
        assert conn.execute(text("SELECT client_id FROM auth_clients")).all() == [("scada-01",)]


def test_every_piece_may_share_one_database(database_url: str, engine: Engine) -> None:
    """One VIGIE_DATABASE_URL for the fleet: each piece's migrations keep their own version
    table and see only their own tables (autogenerate proposes no drop of the others')."""
    everything = (PREDICTION_LOG, MIGRATIONS, ALERTING)
    for migrations in everything:
        upgrade(database_url, migrations)

    tables = set(inspect(engine).get_table_names())
    assert {"alembic_version_predictions", "alembic_version_auth", "alembic_version"} <= tables
    for migrations in everything:
        assert current_revision(database_url, migrations) == migrations.head
        with engine.connect() as conn:
            command.check(migrations.config(conn))

    downgrade(database_url, MIGRATIONS, "base")
    assert "auth_clients" not in inspect(engine).get_table_names()
    assert current_revision(database_url, PREDICTION_LOG) == PREDICTION_LOG.head
    assert current_revision(database_url, ALERTING) == ALERTING.head
    assert {"predictions", "alerts"} <= set(inspect(engine).get_table_names())
