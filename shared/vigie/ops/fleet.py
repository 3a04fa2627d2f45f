"""The pieces of the fleet, their local ports (design.md section 1) and the fleet's settings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PORTS: dict[str, int] = {
    "auth": 8090,
    "alerting": 8100,
    "solar-flare": 8101,
    "gamma-classifier": 8102,
    "transformer-temperature": 8103,
    "turbine-nox": 8104,
    "energy-anomaly": 8105,
}
PREDICTION_PIECES: tuple[str, ...] = tuple(p for p in PORTS if p not in ("auth", "alerting"))

# What gunicorn serves for each piece: an app factory call.
APPS: dict[str, str] = {
    "auth": "vigie_services.auth.app:create_app()",
    "alerting": "vigie_services.alerting.app:create_app()",
}

# Pieces that must run as exactly one worker (alerting's consumer keeps each asset in order).
SINGLE_WORKER = frozenset({"alerting"})

Port = Annotated[int, Field(ge=1, le=65535)]


def app_spec(name: str) -> str:
    """The gunicorn app spec of ``name``: its own factory, or the prediction runtime's."""
    return APPS.get(name, f'vigie.serve.app:app_for("{name}")')


class FleetSettings(BaseSettings):
    """How `vigie fleet run` lays the fleet out on one machine (environment prefix
    ``VIGIE_FLEET_``). The defaults are design.md's ports; tests move every piece to free ports
    with ``VIGIE_FLEET_PORTS='{"auth": 18090, ...}'`` and the ``*_PORT`` settings."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIE_FLEET_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field(default="127.0.0.1", description="address every piece listens on")
    http_port: Port = 8080
    https_port: Port = 8443
    redis_port: Port = 6379
    ports: dict[str, Port] = Field(
        default_factory=dict, description="port overrides per piece, JSON; default design.md's"
    )
    upstream_hosts: dict[str, str] = Field(
        default_factory=dict,
        description="where the gateway finds a piece when not on `host` (JSON; containers: "
        'their service names, e.g. {"auth": "auth"})',
    )
    services: list[str] = Field(
        default_factory=lambda: list(PREDICTION_PIECES),
        description="prediction services to run (JSON list); auth and alerting always run",
    )
    # Gateway limits (nginx/nginx.conf.j2).
    client_rate: Annotated[int, Field(ge=1)] = 200
    client_burst: Annotated[int, Field(ge=0)] = 400
    ip_rate: Annotated[int, Field(ge=1)] = 1000
    ip_burst: Annotated[int, Field(ge=0)] = 2000
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 1
    max_body: str = Field(default="8m", description="nginx size: the services' limit is 8 MiB")
    client_timeout_s: Annotated[int, Field(ge=1, le=600)] = 15
    upstream_timeout_s: Annotated[int, Field(ge=1, le=600)] = 60
    upstream_connect_timeout_s: Annotated[int, Field(ge=1, le=60)] = 3
    nginx_workers: Annotated[int, Field(ge=1, le=64)] = 2
    ready_timeout_s: Annotated[float, Field(gt=0)] = 180.0

    @field_validator("max_body")
    @classmethod
    def _nginx_size(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*[kKmM]?", value):
            raise ValueError("an nginx size such as 8m, 512k or 1048576")
        return value

    @model_validator(mode="after")
    def _known_pieces(self) -> FleetSettings:
        named = set(self.ports) | set(self.services) | set(self.upstream_hosts)
        unknown = sorted(named - set(PORTS))
        if unknown:
            raise ValueError(f"unknown pieces {unknown}; known: {', '.join(PORTS)}")
        if set(self.services) & {"auth", "alerting"}:
            raise ValueError("services lists prediction services; auth and alerting always run")
        return self

    @property
    def pieces(self) -> list[str]:
        """The gunicorn-served pieces this fleet runs, in start order."""
        return ["auth", "alerting", *[s for s in PREDICTION_PIECES if s in self.services]]

    def port(self, piece: str) -> int:
        return self.ports.get(piece, PORTS[piece])

    def upstream_host(self, piece: str) -> str:
        return self.upstream_hosts.get(piece, self.host)

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def gateway_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"
