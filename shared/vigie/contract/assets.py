"""Per-asset settings (``VIGIE_ASSET_CONFIG``), parsed once, typed by the service.

The file maps each service to its assets' settings::

    {"transformer-temperature": {"T1": {"alerte_c": 75, "critique_c": 90}}}

A service declares the model of one asset's settings (``AssetSettings``, a
:class:`~vigie.contract.service.StrictModel` whose fields have defaults); the runtime parses its
section when the service is built and fails start-up with the asset and the field path of the
first mistake. Services read :class:`AssetConfig` and never parse JSON themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from vigie.contract.errors import ConfigError

A = TypeVar("A", bound=BaseModel)


def read_section(path: Path | None, service: str) -> dict[str, Any]:
    """The raw ``{asset: settings}`` of ``service`` in the file at ``path`` (none: ``{}``)."""
    if path is None:
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"VIGIE_ASSET_CONFIG {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"VIGIE_ASSET_CONFIG {path}: must map service names to assets")
    section = config.get(service, {})
    if not isinstance(section, dict):
        raise ConfigError(f"VIGIE_ASSET_CONFIG: '{service}' must map asset ids to settings")
    return section


class AssetConfig(Generic[A], Mapping[str, A]):
    """The configured assets of one service, each with its validated settings."""

    def __init__(self, model: type[A], configured: Mapping[str, A]) -> None:
        self.model = model
        self._configured = dict(configured)

    @classmethod
    def parse(cls, model: type[A], service: str, section: Mapping[str, Any]) -> AssetConfig[A]:
        """Validate every asset's settings; :class:`ConfigError` names the asset and field."""
        parsed: dict[str, A] = {}
        for asset, raw in section.items():
            try:
                parsed[asset] = model.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in (service, asset, *first["loc"]))
                more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
                raise ConfigError(f"VIGIE_ASSET_CONFIG {where}: {first['msg']}{more}") from None
        return cls(model, parsed)

    @classmethod
    def load(cls, model: type[A], service: str, path: Path | None) -> AssetConfig[A]:
        return cls.parse(model, service, read_section(path, service))

    def __getitem__(self, asset_id: str) -> A:
        return self._configured[asset_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._configured)

    def __len__(self) -> int:
        return len(self._configured)

    def for_asset(self, asset_id: str, default: A | None = None) -> A:
        """The asset's settings; otherwise ``default``, otherwise the model's defaults."""
        found = self._configured.get(asset_id)
        if found is not None:
            return found
        return default if default is not None else self.model()
