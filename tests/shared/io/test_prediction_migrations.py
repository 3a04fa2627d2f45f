"""The prediction log's migrations through the shared runner (vigie.io.db), on SQLite and
PostgreSQL: from an empty database, from one made by the code before migrations (its rows
kept), refusing a schema neither made, and from several processes at once."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import DateTime, Engine, bindparam, func, inspect, select, text

from tests.shared.io.migrating_process import upgrade_at_once
from tests.support.db import schema
from vigie.io.db import SchemaMismatch, UpgradeResult, current_revision, downgrade, upgrade
from vigie.io.db.lock import lock_file_of
from vigie.io.db.revision import new_revision
from vigie.io.feedback import FeedbackStore, Observation
from vigie.io.prediction_log import PredictionLog, ensure_schema, make_engine
from vigie.io.prediction_migrations import MIGRATIONS
from vigie.io.prediction_tables import Base, ForecastPointRow, ObservationRow, PredictionRow
from vigie.obs.metrics import ServiceMetrics

# What ensure_schema's create_all made before there were migrations (CreateTable/CreateIndex
# of that code's metadata, per dialect, captured before the change): frozen here, whatever the
# models become.
_LEGACY_COMMON = [
    """CREATE TABLE observations (
        id {serial} NOT NULL, service VARCHAR(64) NOT NULL, asset_id VARCHAR(64) NOT NULL,
        target VARCHAR(64) NOT NULL, timestamp {ts} NOT NULL, value FLOAT NOT NULL,
        received_at {ts} NOT NULL, subject VARCHAR(128) NOT NULL, matched INTEGER NOT NULL,
        PRIMARY KEY (id))""",
    """CREATE TABLE predictions (
        seq {serial} NOT NULL, prediction_id VARCHAR(36) NOT NULL, service VARCHAR(64) NOT NULL,
        asset_id VARCHAR(64) NOT NULL, timestamp {ts} NOT NULL, request_id VARCHAR(64) NOT NULL,
        model_version VARCHAR(80) NOT NULL, level VARCHAR(16) NOT NULL,
        measurement JSON NOT NULL, prediction JSON NOT NULL, created_at {ts} NOT NULL,
        PRIMARY KEY (seq), UNIQUE (prediction_id))""",
    "CREATE INDEX ix_predictions_asset_time ON predictions (service, asset_id, timestamp)",
    """CREATE TABLE forecast_points (
        id {serial} NOT NULL, prediction_id VARCHAR(36) NOT NULL, service VARCHAR(64) NOT NULL,
        asset_id VARCHAR(64) NOT NULL, target VARCHAR(64) NOT NULL, horizon VARCHAR(16) NOT NULL,
        target_time {ts} NOT NULL, predicted FLOAT NOT NULL, observed FLOAT, abs_error FLOAT,
        observed_at {ts}, PRIMARY KEY (id),
        FOREIGN KEY(prediction_id) REFERENCES predictions (prediction_id))""",
    "CREATE INDEX ix_points_match ON forecast_points (service, asset_id, target, target_time)",
]
LEGACY_DDL = {
    "sqlite": [s.format(serial="INTEGER", ts="DATETIME") for s in _LEGACY_COMMON],
    "postgresql": [
        s.format(serial="SERIAL", ts="TIMESTAMP WITHOUT TIME ZONE") for s in _LEGACY_COMMON
    ],
}
VERSION_TABLE = "alembic_version_predictions"
T0 = datetime(2024, 3, 1, 12, 0)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_legacy_database(engine: Engine, *, with_rows: bool = True) -> None:
    """A database as the code before migrations left it: its tables, and a prediction with a
    forecast point and an observation."""
    with engine.begin() as conn:
        for ddl in LEGACY_DDL[conn.dialect.name]:
            conn.execute(text(ddl))
        if not with_rows:
            return
        json = "CAST(:{0} AS JSON)" if conn.dialect.name == "postgresql" else ":{0}"
        # Times bound as DateTime: stored as that code stored them (on SQLite, text with
        # microseconds, which matching compares as strings).
        at = {"ts": DateTime(), "tt": DateTime()}
        conn.execute(
            text(
                "INSERT INTO predictions (prediction_id, service, asset_id, timestamp, request_id,"
                " model_version, level, measurement, prediction, created_at) VALUES ('p-1', 'svc',"
                f" 'T1', :ts, 'req-1', 'v1', 'ALERTE', {json.format('m')}, {json.format('p')},"
                " :ts)"
            ).bindparams(bindparam("ts", type_=at["ts"])),
            {"ts": T0, "m": '{"load": 0.8}', "p": '{"temp_1h": 71.5}'},
        )
        conn.execute(
            text(
                "INSERT INTO forecast_points (prediction_id, service, asset_id, target, horizon,"
                " target_time, predicted) VALUES ('p-1', 'svc', 'T1', 'temp', '1h', :tt, 70.0)"
            ).bindparams(bindparam("tt", type_=at["tt"])),
            {"tt": T0 + timedelta(hours=1)},
        )
        conn.execute(
            text(
                "INSERT INTO observations (service, asset_id, target, timestamp, value,"
                " received_at, subject, matched) VALUES ('svc', 'T1', 'temp', :ts, 1.5, :ts,"
                " 'gw', 0)"
            ).bindparams(bindparam("ts", type_=at["ts"])),
            {"ts": T0},
        )


def alembic_check(engine: Engine) -> None:
    """Alembic's own autogenerate check: raises when the database differs from the models."""
    with engine.connect() as conn:
        command.check(MIGRATIONS.config(conn))


def test_upgrade_of_an_empty_database_gives_exactly_the_models(
    database_url: str, engine: Engine
) -> None:
    result = upgrade(database_url, MIGRATIONS)

    assert result == UpgradeResult(before=None, after=MIGRATIONS.head, stamped=False)
    assert MIGRATIONS.head == "0002"
    alembic_check(engine)
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, VERSION_TABLE}
    # Again: nothing to do, and it says so.
    assert upgrade(database_url, MIGRATIONS) == UpgradeResult("0002", "0002")
    assert current_revision(database_url, MIGRATIONS) == "0002"


def test_the_baseline_is_exactly_the_schema_create_all_made(
    database_url: str, engine: Engine
) -> None:
    make_legacy_database(engine, with_rows=False)
    legacy = schema(engine)
    with engine.begin() as conn:
        for table in ("forecast_points", "predictions", "observations"):
            conn.execute(text(f"DROP TABLE {table}"))

    upgrade(database_url, MIGRATIONS, "0001")

    migrated = schema(engine)
    assert migrated.pop(VERSION_TABLE)
    assert migrated == legacy


def test_a_database_made_before_migrations_is_adopted_and_keeps_its_rows(
    database_url: str, engine: Engine
) -> None:
    make_legacy_database(engine)

    # What `vigie serve` does for a prediction service before its workers start.
    ensure_schema(engine)

    assert current_revision(database_url, MIGRATIONS) == MIGRATIONS.head
    alembic_check(engine)
    metrics = ServiceMetrics("svc")
    log = PredictionLog(make_engine(database_url), "svc", metrics)
    try:
        [old] = log.page("T1", None, None, after_seq=0, limit=10)
        assert (old["prediction_id"], old["level"], old["timestamp"]) == (
            "p-1", "ALERTE", T0.replace(tzinfo=UTC),
        )  # fmt: skip
        assert old["measurement"] == {"load": 0.8}
        # The old forecast point is matched by new truth, and new predictions are written.
        store = FeedbackStore(log.engine, "svc", metrics, flush_predictions=log.flush)
        [match] = store.record_observations(
            "T1", [Observation("temp", T0 + timedelta(hours=1), 73.0)], "gw"
        )
        assert match.matched == 1 and match.predictions == ({"temp_1h": 71.5},)
        assert store.live_mae("T1") == {"1h": 3.0}
    finally:
        log.close()
    with engine.connect() as conn:
        count = lambda table: conn.execute(select(func.count()).select_from(table)).scalar()  # noqa: E731
        assert (count(PredictionRow), count(ForecastPointRow), count(ObservationRow)) == (1, 1, 2)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("DROP TABLE observations", "(no table observations)"),
        ("ALTER TABLE observations DROP COLUMN subject", "(observations lacks subject)"),
    ],
    ids=["a-table-missing", "a-column-missing"],
)
def test_tables_that_are_not_the_old_schema_are_refused_and_left_alone(
    database_url: str, engine: Engine, change: str, reason: str
) -> None:
    make_legacy_database(engine)
    with engine.begin() as conn:
        conn.execute(text(change))
    before = schema(engine)

    with pytest.raises(SchemaMismatch) as refused:
        upgrade(database_url, MIGRATIONS)

    assert f"{reason}; nothing was changed" in str(refused.value)
    assert schema(engine) == before  # no version table either
    assert current_revision(database_url, MIGRATIONS) is None


def test_downgrade_to_base_leaves_only_the_version_table(database_url: str, engine: Engine) -> None:
    upgrade(database_url, MIGRATIONS)
    downgrade(database_url, MIGRATIONS, "base")
    assert inspect(engine).get_table_names() == [VERSION_TABLE]
    assert current_revision(database_url, MIGRATIONS) is None
    assert upgrade(database_url, MIGRATIONS).after == MIGRATIONS.head


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory SQLite"):
        upgrade("sqlite://", MIGRATIONS)


def test_current_revision_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing-yet.db"
    assert current_revision(f"sqlite:///{path}", MIGRATIONS) is None
    assert not path.exists()


@pytest.mark.parametrize("made_before_migrations", [False, True], ids=["empty", "legacy"])
def test_processes_upgrading_at_once_all_succeed_and_one_migrates(
    database_url: str, engine: Engine, made_before_migrations: bool
) -> None:
    if made_before_migrations:
        make_legacy_database(engine)
    n = 2
    outcomes = upgrade_at_once(database_url, "vigie.io.prediction_migrations:MIGRATIONS", n)

    assert [o[0] for o in outcomes] == ["ok"] * n, outcomes
    assert {o[2] for o in outcomes} == {MIGRATIONS.head}
    # Exactly one found no version row and did the work; the others found it done.
    assert sorted(o[1] is None for o in outcomes) == [False] * (n - 1) + [True]
    assert [o[3] for o in outcomes].count(True) == (1 if made_before_migrations else 0)
    with engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        rows = conn.execute(select(func.count()).select_from(PredictionRow)).scalar()
    assert versions == [(MIGRATIONS.head,)]
    assert rows == (1 if made_before_migrations else 0)
    alembic_check(engine)
    if engine.dialect.name == "sqlite":
        assert lock_file_of(Path(str(engine.url.database))).exists()


def test_the_next_revision_is_numbered_and_empty_while_the_models_match_head(
    tmp_path: Path,
) -> None:
    """`vigie db revision ... --autogenerate` on a copy of the script directory: the models
    are what the revisions make, so Alembic finds nothing to write but the next number."""
    copy = tmp_path / "prediction_migrations"
    shutil.copytree(MIGRATIONS.script_location, copy, ignore=shutil.ignore_patterns("__pycache__"))
    migrations = dataclasses.replace(MIGRATIONS, script_location=copy)

    path = new_revision(migrations, "nothing yet", autogenerate=True)

    assert path.parent == copy / "versions" and path.name.startswith("0003_nothing_yet")
    written = path.read_text()
    assert 'down_revision: str | Sequence[str] | None = "0002"' in written
    assert "op." not in written  # no operation: upgrade and downgrade are `pass`
    assert migrations.head == "0003"
