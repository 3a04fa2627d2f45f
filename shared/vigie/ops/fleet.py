"""The fleet's settings on one machine: which pieces run, on which ports, behind which gateway.

The pieces themselves, their design.md ports and prefixes come from the registry
(:mod:`vigie.ops.registry`); :class:`FleetSettings` moves and picks them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigie.ops.registry import Registry, load

Port = Annotated[int, Field(ge=1, le=65535)]

# Derived from the registry (module __getattr__ below) for the callers not yet reading it:
# PORTS is load().ports, PREDICTION_PIECES load().prediction_names.
PORTS: dict[str, int]
PREDICTION_PIECES: tuple[str, ...]


def __getattr__(name: str) -> Any:
    if name == "PORTS":
        return load().ports
    if name == "PREDICTION_PIECES":
        return load().prediction_names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _all_services(data: dict[str, Any]) -> list[str]:
    registry = data.get("registry")
    return list((registry if isinstance(registry, Registry) else load()).prediction_names)


class FleetSettings(BaseSettings):
    """How `vigie fleet run` lays the fleet out on one machine (environment prefix
    ``VIGIE_FLEET_``). The defaults are design.md's ports; tests move every piece to free ports
    with ``VIGIE_FLEET_PORTS='{"auth": 18090, ...}'`` and the ``*_PORT`` settings.

    ``registry`` is not a setting: the pieces this fleet is made of, the installed ones by
    default (tests pass their own, e.g. with an extra piece)."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIE_FLEET_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        arbitrary_types_allowed=True,
    )

    registry: Registry = Field(default_factory=load, exclude=True, repr=False)

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
    upstream_by_name: bool = Field(
        default=False,
        description="the gateway finds each piece not in upstream_hosts at its own name (the "
        "compose and Kubernetes service names) rather than on `host`",
    )
    services: list[str] = Field(
        default_factory=_all_services,
        description="prediction services to run (JSON list); the platform pieces (auth, "
        "alerting) always run",
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
        unknown = sorted(named - set(self.registry.names))
        if unknown:
            raise ValueError(f"unknown pieces {unknown}; known: {', '.join(self.registry.names)}")
        platform = sorted(set(self.services) - set(self.registry.prediction_names))
        if platform:
            always = " and ".join(p.name for p in self.registry.platform)
            raise ValueError(
                f"services lists prediction services, not {platform}; {always} always run"
            )
        return self

    @property
    def pieces(self) -> list[str]:
        """The gunicorn-served pieces this fleet runs, in start order: every platform piece,
        then the chosen prediction services, in the registry's order."""
        return [p.name for p in self.registry if not p.is_prediction or p.name in self.services]

    def port(self, piece: str) -> int:
        return self.ports.get(piece, self.registry.get(piece).port)

    def prefix(self, piece: str) -> str:
        """``piece``'s route on the gateway, e.g. ``/turbine-nox/``."""
        return self.registry.get(piece).prefix

    def upstream_host(self, piece: str) -> str:
        if piece in self.upstream_hosts:
            return self.upstream_hosts[piece]
        return piece if self.upstream_by_name else self.host

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def gateway_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"
