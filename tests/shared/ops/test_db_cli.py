"""``vigie db upgrade`` and ``vigie db current`` on the fleet's real pieces, their databases on
SQLite files under a temporary var/, or all in one PostgreSQL database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from sqlalchemy import inspect, make_url, text
from typer.testing import CliRunner, Result

from vigie.io.db import current_revision, make_engine
from vigie.io.prediction_migrations import MIGRATIONS as PREDICTION_LOG
from vigie.ops.db_cli import db_app
from vigie.ops.registry import Piece, Registry, load
from vigie_services.alerting.migrations import MIGRATIONS as ALERTING
from vigie_services.auth.migrations import MIGRATIONS as AUTH

# As the `vigie` command registers it (vigie.ops.cli: app.add_typer(db_app, name="db")).
vigie = typer.Typer()
vigie.add_typer(db_app, name="db")

PREDICTION = ["solar-flare", "gamma-classifier", "transformer-temperature", "turbine-nox",
              "energy-anomaly"]  # fmt: skip


def run(*args: str, registry: Registry | None = None) -> Result:
    return CliRunner().invoke(vigie, ["db", *args], obj=registry or load())


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings of a fresh machine: every piece's SQLite file under tmp_path."""
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("VIGIE_DATABASE_URL", "")
    return tmp_path


def said(result: Result) -> str:
    """stderr as one line of words (typer draws usage errors in a box, wrapped)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())


def lines(result: Result) -> dict[str, str]:
    """Output lines by piece name."""
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_upgrade_with_no_piece_named_upgrades_every_piece_with_a_database(var_dir: Path) -> None:
    result = run("upgrade")

    assert result.exit_code == 0, result.output
    done = lines(result)
    assert list(done) == ["auth", "alerting", *PREDICTION]
    assert done["auth"] == f"created at 0001 (auth clients, sqlite:///{var_dir / 'auth.db'})"
    assert done["alerting"].startswith(f"created at {ALERTING.head} (alerting, sqlite:///")
    for name in PREDICTION:
        assert done[name] == (
            f"created at {PREDICTION_LOG.head} (prediction log, sqlite:///{var_dir / name}.db)"
        )
        assert current_revision(f"sqlite:///{var_dir / name}.db", PREDICTION_LOG) == "0002"

    again = run("upgrade")
    assert again.exit_code == 0, again.output
    assert lines(again)["turbine-nox"].startswith("at 0002 already (prediction log")
    assert lines(again)["auth"].startswith("at 0001 already (auth clients")


def test_upgrade_of_named_pieces_adopts_a_database_made_before_migrations(var_dir: Path) -> None:
    old = make_engine(f"sqlite:///{var_dir / 'auth.db'}")
    try:
        with old.begin() as conn:  # auth_clients as create_all made it
            conn.execute(text(
                "CREATE TABLE auth_clients (client_id VARCHAR(64) NOT NULL, secret_hash"
                " VARCHAR(255) NOT NULL, scopes TEXT NOT NULL, created_at DATETIME NOT NULL,"
                " disabled BOOLEAN NOT NULL, PRIMARY KEY (client_id))"
            ))  # fmt: skip
            conn.execute(text("INSERT INTO auth_clients VALUES ('c', 'h', 's', '2024-01-01', 0)"))
    finally:
        old.dispose()

    result = run("upgrade", "auth", "turbine-nox", "auth")

    assert result.exit_code == 0, result.output
    done = lines(result)
    assert list(done) == ["auth", "turbine-nox"]  # each once, in the order given
    assert done["auth"].startswith(
        "tables made before migrations kept: stamped 0001, upgraded to 0001 (auth clients"
    )
    assert not (var_dir / "solar-flare.db").exists()  # not named, not touched
    engine = make_engine(f"sqlite:///{var_dir / 'auth.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT client_id FROM auth_clients")).all() == [("c",)]
    finally:
        engine.dispose()


def test_current_prints_the_revision(var_dir: Path) -> None:
    before = run("current", "alerting")
    assert before.exit_code == 0, before.output
    assert before.stdout == "(none)\n"
    assert f"the latest revision is {ALERTING.head}: `vigie db upgrade alerting`" in before.stderr

    assert run("upgrade", "alerting").exit_code == 0
    after = run("current", "alerting")
    assert (after.exit_code, after.stdout, after.stderr) == (0, f"{ALERTING.head}\n", "")
    assert run("current", "energy-anomaly").stdout == "(none)\n"


def test_a_database_that_cannot_be_upgraded_fails_the_command_not_the_others(
    var_dir: Path,
) -> None:
    broken = make_engine(f"sqlite:///{var_dir / 'solar-flare.db'}")
    try:
        with broken.begin() as conn:  # a `predictions` table the old code never made alone
            conn.execute(text("CREATE TABLE predictions (seq INTEGER PRIMARY KEY)"))
    finally:
        broken.dispose()

    result = run("upgrade", "solar-flare", "auth")

    assert result.exit_code == 1
    assert "solar-flare: not upgraded (prediction log, sqlite:///" in result.stderr
    assert "no table forecast_points" in result.stderr and "nothing was changed" in result.stderr
    assert lines(result) == {"auth": f"created at 0001 (auth clients, sqlite:///{var_dir}/auth.db)"}


def test_unknown_pieces_and_pieces_without_a_database_are_refused(var_dir: Path) -> None:
    unknown = run("upgrade", "auth", "nope")
    assert unknown.exit_code == 2
    assert "nope" in said(unknown) and "turbine-nox" in said(unknown)  # the known ones listed
    assert not (var_dir / "auth.db").exists()  # nothing done before refusing

    # A piece whose code is not installed here: skipped by default, refused when named.
    audit = Piece(name="audit", port=18300, app="vigie_services.audit.app:create_app()")
    registry = load().with_piece(audit)
    named = run("current", "audit", registry=registry)
    assert named.exit_code == 2
    assert "audit has no database (its code is not installed here)" in said(named)
    everything = run("upgrade", registry=registry)
    assert everything.exit_code == 0, everything.output
    assert "audit" not in lines(everything)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_piece_in_one_postgresql_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("VIGIE_DATABASE_URL", database_url)

    result = run("upgrade")

    assert result.exit_code == 0, result.output
    done = lines(result)
    password = make_url(database_url).password
    assert password and password not in result.output and ":***@" in done["auth"]
    assert done["auth"].startswith("created at 0001 (auth clients, postgresql+psycopg://")
    assert done["alerting"].startswith(f"created at {ALERTING.head} (alerting, ")
    # The five services share the prediction log's tables: the first creates them.
    assert done[PREDICTION[0]].startswith("created at 0002 (prediction log, ")
    for name in PREDICTION[1:]:
        assert done[name].startswith("at 0002 already (prediction log, ")
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"auth_clients", "alerts", "predictions", "alembic_version_auth"} <= tables
    assert run("current", "auth").stdout == f"{AUTH.head}\n"
