"""VigieSettings: defaults, the VIGIE_ environment prefix, and failing fast on bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

import vigie.settings as settings_module
from vigie.settings import VigieSettings, default_data_dir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VIGIE_* variable and no .env file from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("VIGIE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # env_file=".env" is relative to the working directory


def make(**kwargs: object) -> VigieSettings:
    return VigieSettings(_env_file=None, **kwargs)  # type: ignore[call-arg]


def test_defaults() -> None:
    s = make()
    root = settings_module.REPO_ROOT
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.database_url is None
    assert s.var_dir == root / "var"
    assert s.models_dir == root / "models"
    assert s.log_level == "INFO"
    assert s.max_batch == 5000
    assert s.redis_timeout_s == 0.5
    assert s.levels_stream == "vigie:levels"
    assert s.asset_config is None
    assert s.resolved_keys_dir == root / "var" / "keys"
    assert s.resolved_jwks_path == root / "var" / "keys" / "jwks.json"


def test_data_dir_prefers_repo_data_then_sibling_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "work" / "main"
    repo.mkdir(parents=True)
    monkeypatch.setattr(settings_module, "REPO_ROOT", repo)

    # Neither exists: the repo's data/ (so the error names the conventional place).
    assert default_data_dir() == repo / "data"

    sibling = tmp_path / "work" / "shared" / "data"
    sibling.mkdir(parents=True)
    assert default_data_dir() == sibling
    assert make().data_dir == sibling

    (repo / "data").mkdir()
    assert default_data_dir() == repo / "data"
    assert make().data_dir == repo / "data"


def test_env_prefix_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIE_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("VIGIE_MAX_BATCH", "17")
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path / "v"))
    monkeypatch.setenv("VIGIE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("VIGIE_REDIS_TIMEOUT_S", "1.5")
    s = make()
    assert s.redis_url == "redis://example:6380/2"
    assert s.max_batch == 17
    assert s.var_dir == tmp_path / "v"
    assert s.data_dir == tmp_path / "d"
    assert s.redis_timeout_s == 1.5
    assert s.resolved_keys_dir == tmp_path / "v" / "keys"


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://not-this:1/0")
    monkeypatch.setenv("MAX_BATCH", "3")
    s = make()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.max_batch == 5000


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    # clean_env chdir'd to tmp_path, so ".env" is this file.
    (tmp_path / ".env").write_text("VIGIE_MAX_BATCH=42\n")
    assert VigieSettings().max_batch == 42


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("VIGIE_REDIS_URL", "http://x", "redis_url"),
        ("VIGIE_LOG_LEVEL", "LOUD", "log_level"),
        ("VIGIE_MAX_BATCH", "0", "max_batch"),
        ("VIGIE_MAX_BATCH", "many", "max_batch"),
        ("VIGIE_REDIS_TIMEOUT_S", "0", "redis_timeout_s"),
        ("VIGIE_IDEMPOTENCY_TTL_S", "5", "idempotency_ttl_s"),
    ],
)
def test_bad_values_fail_at_construction_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as excinfo:
        make()
    errors = excinfo.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(excinfo.value)


def test_redis_url_error_says_what_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_REDIS_URL", "http://x")
    with pytest.raises(ValidationError, match=r"redis://"):
        make()


@pytest.mark.parametrize("url", ["redis://h:1/0", "rediss://h:1/0", "unix:///tmp/redis.sock"])
def test_accepted_redis_schemes(url: str) -> None:
    assert make(redis_url=url).redis_url == url


def test_missing_asset_config_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_ASSET_CONFIG", "/nonexistent")
    with pytest.raises(ValidationError) as excinfo:
        make()
    message = str(excinfo.value)
    assert "VIGIE_ASSET_CONFIG" in message
    assert "/nonexistent" in message


def test_existing_asset_config_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "assets.json"
    config.write_text("{}")
    monkeypatch.setenv("VIGIE_ASSET_CONFIG", str(config))
    assert make().asset_config == config


@pytest.mark.parametrize("value", ["debug", "Warning", "error"])
def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VIGIE_LOG_LEVEL", value)
    assert make().log_level == value.upper()


def test_database_url_for_defaults_to_a_sqlite_file_under_var_dir(tmp_path: Path) -> None:
    s = make(var_dir=tmp_path / "var")
    assert s.database_url_for("x") == f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    assert s.database_url_for("y") != s.database_url_for("x")


def test_database_url_for_uses_the_configured_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert make().database_url_for("x") == "postgresql+psycopg://u@h/db"


def test_settings_are_frozen() -> None:
    s = make()
    with pytest.raises(ValidationError):
        s.max_batch = 3  # type: ignore[misc]
