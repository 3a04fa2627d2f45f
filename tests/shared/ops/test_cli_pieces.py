"""The ``vigie`` command reads the registry of pieces: names it accepts, what `vigie serve` runs,
the command groups pieces bring. A test registry is passed as the command's ``obj``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vigie.contract.errors import ConfigError
from vigie.ops.cli import app, gunicorn_argv
from vigie.ops.registry import CliSpec, Piece, RegistryError, load, prediction_service
from vigie.settings import VigieSettings

runner = CliRunner()

audit_app = typer.Typer(help="Audit trail of the fleet.")


@audit_app.command("show")
def audit_show() -> None:
    """Print the audit trail."""
    typer.echo("audit: nothing yet")


def refuse(piece: Piece, settings: VigieSettings) -> None:
    raise ConfigError(f"{piece.name} refuses {settings.var_dir.name}")


AUDIT = Piece(
    name="audit",
    port=18300,
    app="vigie_services.audit.app:create_app()",
    prepare=f"{__name__}:refuse",
    cli=CliSpec("audit", f"{__name__}:audit_app"),
)
FAKE = prediction_service("fake-piece", 18199, "vigie_services.fake_piece.service:FakeService")


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path / "var"))


def test_pieces_lists_the_registry_in_start_order() -> None:
    done = runner.invoke(app, ["pieces"])
    assert done.exit_code == 0, done.output
    assert done.stdout.split() == list(load().names)
    done = runner.invoke(app, ["pieces", "--kind", "prediction"])
    assert done.stdout.split() == list(load().prediction_names)
    done = runner.invoke(app, ["pieces", "--json"], obj=load().with_piece(FAKE))
    declared = {p["name"]: p for p in json.loads(done.stdout)}
    assert declared["fake-piece"]["port"] == 18199
    assert declared["alerting"]["workers"] == "one"
    assert declared["auth"]["cli"] == {"name": "clients", "app": load().get("auth").cli.app}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["serve", "nox"], "unknown piece 'nox'; known: auth, alerting, solar-flare"),
        (["train", "auth"], "unknown service 'auth'; known: solar-flare, gamma-classifier"),
        (["models", "show", "alerting"], "unknown service 'alerting'"),
        (["train", "fake-piece"], "unknown service 'fake-piece'"),  # not in the installed one
    ],
)
def test_names_outside_the_registry_are_refused_with_the_known_ones(
    args: list[str], why: str
) -> None:
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    assert why in " ".join(done.output.replace("│", " ").split())


def test_a_registry_s_new_piece_is_accepted_and_prepared_before_serving() -> None:
    done = runner.invoke(app, ["serve", "audit"], obj=load().with_piece(AUDIT))
    assert done.exit_code == 2  # its own prepare refused: gunicorn never started
    assert "cannot start audit: audit refuses var" in " ".join(done.output.split())


def test_gunicorn_runs_the_piece_s_app_with_its_workers_policy() -> None:
    registry = load()
    argv = gunicorn_argv(registry.get("alerting"), "0.0.0.0", None, 8)
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[argv.index("--workers") + 1] == "1"  # one consumer, whatever is asked
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8100"
    assert argv[-1] == "vigie_services.alerting.app:create_app()"
    argv = gunicorn_argv(registry.get("turbine-nox"), "127.0.0.1", 18104, 3)
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:18104"
    assert argv[argv.index("--name") + 1] == "vigie-turbine-nox"
    assert argv[-1] == 'vigie.serve.app:app_for("turbine-nox")'


def test_pieces_bring_their_command_groups() -> None:
    done = runner.invoke(app, ["--help"])
    assert done.exit_code == 0 and "clients" in done.stdout
    assert "Register the OAuth2 clients" in done.stdout
    done = runner.invoke(app, ["clients", "--help"])
    assert done.exit_code == 0 and "add" in done.stdout
    grown = load().with_piece(AUDIT)
    done = runner.invoke(app, ["audit", "show"], obj=grown)
    assert done.exit_code == 0, done.output
    assert done.stdout == "audit: nothing yet\n"
    assert "audit" not in runner.invoke(app, ["--help"]).stdout  # not a piece of the installed one


def test_a_piece_whose_code_is_absent_has_no_commands() -> None:
    # A container image holds one piece's package: the others' commands are simply not there.
    absent = AUDIT.__class__(
        **{**AUDIT.__dict__, "cli": CliSpec("audit", "vigie_services.absent.cli:app")}
    )
    done = runner.invoke(app, ["--help"], obj=load().with_piece(absent))
    assert done.exit_code == 0 and "clients" in done.stdout and "audit" not in done.stdout


def test_a_piece_may_not_hide_a_command_of_vigie() -> None:
    shadow = Piece(
        name="shadow", port=18301, app="m:a()", cli=CliSpec("serve", f"{__name__}:audit_app")
    )
    done = runner.invoke(app, ["--help"], obj=load().with_piece(shadow))
    assert isinstance(done.exception, RegistryError)
    assert "['serve'] would hide vigie's own" in str(done.exception)


def test_the_clients_group_is_still_importable_from_the_runtime_cli() -> None:
    from vigie.auth.cli import clients_app
    from vigie_services.auth.piece import clients_app as own

    assert clients_app is own


def test_without_any_piece_command_vigie_still_runs() -> None:
    done = runner.invoke(app, ["--help"], obj=load().without("auth"))
    assert done.exit_code == 0 and "clients" not in done.stdout and "serve" in done.stdout
