"""The files generated from the registry and committed: the ``Procfile`` and
``deploy/prometheus/prometheus.yml``. Each must be exactly what its generator writes now; the
problems also name the pieces the committed file lacks, so a new piece is easy to trace."""

from __future__ import annotations

from pathlib import Path

import yaml

from vigie.ops import procfile, prometheus
from vigie.ops.artifacts.problems import Problems
from vigie.ops.registry import Registry


def check_procfile(registry: Registry, path: Path) -> list[str]:
    """``path`` against :func:`vigie.ops.procfile.render` of ``registry``."""
    lines = {}
    for line in path.read_text().splitlines():
        name, sep, _ = line.partition(":")
        if sep and not line.startswith("#"):
            lines[name.strip()] = line
    problems = Problems(path.name)
    for piece in registry:
        if lines.get(piece.name) != procfile.process_line(piece.name):
            problems.of(piece, f"no process `{procfile.process_line(piece.name)}`")
    if path.read_text() != procfile.render(registry):
        problems.append(
            f"{path.name} is not what the registry generates: "
            "python -m vigie.ops.procfile > Procfile"
        )
    return problems


def check_prometheus(registry: Registry, path: Path) -> list[str]:
    """``path`` (docker-compose's Prometheus) against
    :func:`vigie.ops.prometheus.compose_config` of ``registry``."""
    config = yaml.safe_load(path.read_text()) or {}
    targets: dict[str, list[str]] = {}
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            service = (static.get("labels") or {}).get("service")
            targets.setdefault(str(service), []).extend(static.get("targets") or [])
    problems = Problems(path.name)
    for piece in registry:
        if targets.get(piece.name) != [f"{piece.name}:{piece.port}"]:
            problems.of(piece, f"not scraped at {piece.name}:{piece.port}")
    problems += [
        f"{path.name}: scrapes {name!r}, which is no piece"
        for name in targets
        if name not in registry
    ]
    if path.read_text() != prometheus.compose_config(registry):
        problems.append(
            f"{path.name} is not what the registry generates: "
            "python -m vigie.ops.prometheus --compose > deploy/prometheus/prometheus.yml"
        )
    return problems
