"""``docker-compose.yml`` against the registry: a service per piece, built from its target.

Read as YAML (anchors and ``<<`` merge keys resolved), without docker-compose: the deploy tests
also check what ``docker-compose config`` makes of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vigie.ops.artifacts.problems import Problems
from vigie.ops.registry import Registry

GATEWAY = "gateway"
MODELS_DIR = "/app/models"  # VIGIE_MODELS_DIR of the images (Dockerfile)


def _names(value: Any) -> set[str]:
    """The names of a ``depends_on`` (list or mapping) or a list of strings."""
    if isinstance(value, dict):
        return set(value)
    return {str(v) for v in value or []}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of a service's ``volumes`` (short or long syntax)."""
    out = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            out[str(volume.get("target"))] = str(volume.get("source"))
        else:
            source, _, rest = str(volume).partition(":")
            out[rest.split(":")[0]] = source
    return out


def _healthcheck(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(map(str, test)) if isinstance(test, list) else str(test or "")


def check_compose(registry: Registry, path: Path) -> list[str]:
    """What ``path`` lacks for ``registry``: for each piece a service of its name built from its
    Dockerfile target into ``vigie/<piece>``, exposing its port (never publishing it), health
    checked on ``/readyz``, awaited by the gateway; for each prediction service its own models
    volume. Also a service built from a target that is no piece (nor the gateway)."""
    doc = yaml.safe_load(path.read_text()) or {}
    services: dict[str, dict[str, Any]] = doc.get("services") or {}
    volumes = set(doc.get("volumes") or {})
    awaited = _names((services.get(GATEWAY) or {}).get("depends_on"))
    problems = Problems(path.name)
    for piece, service in problems.each_found(registry, services, "no service named after it"):
        build = service.get("build")
        target = build.get("target") if isinstance(build, dict) else None
        if target != piece.name:
            problems.of(piece, f"built from target {target!r}, not {piece.name!r}")
        if not str(service.get("image", "")).startswith(f"vigie/{piece.name}:"):
            problems.of(piece, f"image {service.get('image')!r}, not vigie/{piece.name}:...")
        if _names(service.get("expose")) != {str(piece.port)}:
            problems.of(piece, f"expose {service.get('expose')}, not [{piece.port}]")
        if service.get("ports"):
            problems.of(piece, "publishes ports (only the gateway is reached from outside)")
        if f"http://127.0.0.1:{piece.port}/readyz" not in _healthcheck(service):
            problems.of(piece, f"no healthcheck on http://127.0.0.1:{piece.port}/readyz")
        if piece.name not in awaited:
            problems.of(piece, f"the {GATEWAY} does not depend on it")
        if piece.is_prediction:
            volume = f"models-{piece.name}"
            if _mounts(service).get(MODELS_DIR) != volume or volume not in volumes:
                problems.of(piece, f"no named volume {volume} on {MODELS_DIR}")
    for name, service in services.items():
        build = service.get("build")
        target = build.get("target") if isinstance(build, dict) else None
        if target is not None and target != GATEWAY and target not in registry:
            problems.append(f"{path.name}: service {name!r} builds {target!r}, which is no piece")
    return problems
