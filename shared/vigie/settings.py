"""The one settings object of a Vigie process (design.md section 5).

Read from the environment with the ``VIGIE_`` prefix (and an optional ``.env`` file); anything
malformed stops the process at start-up with a message naming the variable, instead of failing on
the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigie.obs import logs

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """The first of ``data/`` and ``../shared/data/`` that exists (relative to the repo)."""
    for candidate in (REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return REPO_ROOT / "data"


class VigieSettings(BaseSettings):
    """Settings shared by every Vigie process; services read what they need from it."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIE_", env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file var/<service>.db",
    )
    var_dir: Path = REPO_ROOT / "var"
    models_dir: Path = REPO_ROOT / "models"
    data_dir: Path = Field(default_factory=default_data_dir)
    keys_dir: Path | None = Field(default=None, description="dev keys; default var/keys")

    jwt_public_keys: Path | None = Field(
        default=None,
        description="JWKS file with the trusted public keys; default var/keys/jwks.json",
    )
    jwks_url: str | None = Field(default=None, description="fetch the JWKS from auth instead")
    jwt_issuer: str = "vigie"
    jwt_audience: str = "vigie"
    jwt_leeway_s: Annotated[int, Field(ge=0, le=300)] = 10
    token_ttl_s: Annotated[int, Field(gt=0, le=86_400)] = 3600

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="stderr log lines: JSON objects, or plain text for humans"
    )
    access_log: bool = Field(default=True, description="one log line per HTTP request")

    max_batch: Annotated[int, Field(ge=1, le=100_000)] = 5000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    idempotency_ttl_s: Annotated[int, Field(ge=60)] = 24 * 3600
    redis_timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    outbox_flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    levels_stream: str = "vigie:levels"
    levels_stream_maxlen: Annotated[int, Field(ge=1000)] = 1_000_000
    prediction_log_flush_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    prediction_log_batch: Annotated[int, Field(ge=1)] = 1000
    prediction_log_max_backlog: Annotated[int, Field(ge=1000)] = Field(
        default=20_000,
        description="predictions queued for the database beyond which predict requests wait "
        "for the writer (backpressure), and answer 503 after prediction_log_wait_s",
    )
    prediction_log_wait_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    inline_predict_budget_us: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=200,
        description="predict calls of few rows measured faster than this run on the event loop "
        "instead of the model thread (0: never); see vigie.serve.executor.ModelCalls",
    )
    inline_predict_max_rows: Annotated[int, Field(ge=0, le=10_000)] = 8
    micro_batch_window_us: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=0,
        description="micro-batching: predict calls of few rows arriving within this window go "
        "to the service's predict_batch together (0: off, the default)",
    )
    micro_batch_max_rows: Annotated[int, Field(ge=1, le=10_000)] = 64
    asset_config: Path | None = Field(
        default=None, description="JSON file with per-asset settings (thresholds...), per service"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _asset_config_exists(self) -> VigieSettings:
        if self.asset_config is not None and not self.asset_config.is_file():
            raise ValueError(f"VIGIE_ASSET_CONFIG: no such file {self.asset_config}")
        return self

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or self.var_dir / "keys"

    @property
    def resolved_jwks_path(self) -> Path:
        return self.jwt_public_keys or self.resolved_keys_dir / "jwks.json"

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.var_dir / (service + '.db')}"

    def configure_logging(self, service: str | None = None) -> None:
        """See :func:`vigie.obs.logs.configure_logging`."""
        logs.configure_logging(self, service)
