from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vigie.auth.cli import clients_app, keys_app, token_app
from vigie.auth.keys import load_signing_key
from vigie.auth.keyset import KeySet
from vigie.auth.verify import TokenVerifier
from vigie.settings import VigieSettings
from vigie_services.auth.clients import ClientStore

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VIGIE_* pointing into tmp_path; cwd moved so no stray .env file is read."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "VIGIE_DATABASE_URL",
        "VIGIE_JWT_PUBLIC_KEYS",
        "VIGIE_JWKS_URL",
        "VIGIE_TOKEN_TTL_S",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("VIGIE_KEYS_DIR", str(tmp_path / "var" / "keys"))
    return tmp_path / "var"


def main_app() -> typer.Typer:
    """The sub-apps wired the way the ``vigie`` command registers them."""
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    app.add_typer(token_app, name="token")
    app.add_typer(clients_app, name="clients")
    return app


def test_sub_apps_have_help() -> None:
    for sub in (keys_app, token_app, clients_app):
        assert sub.info.help
    result = runner.invoke(main_app(), ["--help"])
    assert result.exit_code == 0
    for name in ("keys", "token", "clients"):
        assert name in result.stdout


def test_keys_init_prints_long_paths_unbroken(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 4, "keys")
    result = runner.invoke(main_app(), ["keys", "init", "--keys-dir", str(deep)])
    assert result.exit_code == 0, result.output
    assert str(deep / "private.pem") in result.stderr.splitlines()[1]  # one line, copyable
    assert str(deep / "jwks.json") in result.stderr.splitlines()[2]


def test_keys_init_is_idempotent(env: Path) -> None:
    first = runner.invoke(main_app(), ["keys", "init"])
    assert first.exit_code == 0, first.output
    kid = first.stdout.strip()
    assert kid == load_signing_key(env / "keys").kid
    assert "private.pem" in first.stderr and "jwks.json" in first.stderr
    again = runner.invoke(main_app(), ["keys", "init"])
    assert again.stdout.strip() == kid
    rotated = runner.invoke(main_app(), ["keys", "init", "--force"])
    assert rotated.exit_code == 0
    assert rotated.stdout.strip() != kid


def test_keys_init_with_explicit_dir(env: Path, tmp_path: Path) -> None:
    result = runner.invoke(keys_app, ["init", "--keys-dir", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "private.pem").is_file()


def test_token_issue_prints_only_a_verifiable_token(env: Path) -> None:
    runner.invoke(main_app(), ["keys", "init"])
    result = runner.invoke(
        main_app(),
        ["token", "issue", "--sub", "ops",
         "--scope", "predict:transformer-temperature feedback:transformer-temperature",
         "--ttl", "30m"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    principal = TokenVerifier(KeySet.from_file(env / "keys" / "jwks.json")).verify(token)
    assert principal.sub == "ops"
    assert principal.scopes == {
        "predict:transformer-temperature",
        "feedback:transformer-temperature",
    }
    assert principal.expires_at - principal.claims["iat"] == 1800


def test_token_issue_default_ttl_and_repeated_scope(env: Path) -> None:
    runner.invoke(main_app(), ["keys", "init"])
    result = runner.invoke(
        token_app, ["issue", "--sub", "ops", "--scope", "alerts:read", "-s", "alerts:ack"]
    )
    assert result.exit_code == 0, result.output
    principal = TokenVerifier(KeySet.from_file(env / "keys" / "jwks.json")).verify(
        result.stdout.strip()
    )
    assert principal.scopes == {"alerts:read", "alerts:ack"}
    assert principal.expires_at - principal.claims["iat"] == VigieSettings().token_ttl_s


def test_token_issue_errors(env: Path) -> None:
    no_keys = runner.invoke(token_app, ["issue", "--sub", "ops", "--scope", "alerts:read"])
    assert no_keys.exit_code == 1
    assert "vigie keys init" in no_keys.stderr
    assert no_keys.stdout == ""
    runner.invoke(keys_app, ["init"])
    bad_ttl = runner.invoke(token_app, ["issue", "--sub", "o", "--scope", "a:b", "--ttl", "soon"])
    assert bad_ttl.exit_code == 1
    assert "invalid duration" in bad_ttl.stderr
    no_scope = runner.invoke(token_app, ["issue", "--sub", "o", "--scope", " "])
    assert no_scope.exit_code == 1


def test_clients_add_list_remove(env: Path) -> None:
    app = main_app()
    added = runner.invoke(app, ["clients", "add", "scada-1", "--scope", "predict:turbine-nox"])
    assert added.exit_code == 0, added.output
    lines = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())
    assert lines["client_id"] == "scada-1"
    secret = lines["client_secret"]
    store = ClientStore.from_settings(VigieSettings())
    assert store.verify_client("scada-1", secret) == {"predict:turbine-nox"}

    duplicate = runner.invoke(app, ["clients", "add", "scada-1", "--scope", "alerts:read"])
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.stderr

    listed = runner.invoke(app, ["clients", "list"])
    assert listed.exit_code == 0
    assert "scada-1" in listed.stdout and "predict:turbine-nox" in listed.stdout
    assert secret not in listed.stdout

    removed = runner.invoke(app, ["clients", "remove", "scada-1"])
    assert removed.exit_code == 0, removed.output
    assert store.list_clients() == []
    again = runner.invoke(app, ["clients", "remove", "scada-1"])
    assert again.exit_code == 1
    assert "no client" in again.stderr
    store.close()


def test_clients_add_rejects_bad_input(env: Path) -> None:
    bad_name = runner.invoke(clients_app, ["add", "no spaces", "--scope", "alerts:read"])
    assert bad_name.exit_code == 1
    assert "invalid client id" in bad_name.stderr
    bad_scope = runner.invoke(clients_app, ["add", "ok", "--scope", 'quote"d'])
    assert bad_scope.exit_code == 1
