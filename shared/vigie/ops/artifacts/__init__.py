"""The deployment files of the repository, checked against the registry of pieces.

Every piece of :mod:`vigie.ops.registry` must appear in each file that lays the fleet out; a
piece added to the registry makes these checks name it until the files follow. Each check takes
a registry and the file (or folder) and returns its problems, one sentence each, naming the
piece (an empty list: the file agrees):

- :func:`check_compose`: ``docker-compose.yml`` (hand-written);
- :func:`check_kubernetes`: ``deploy/kubernetes`` (hand-written);
- :func:`check_dockerfile`: ``Dockerfile`` (hand-written);
- :func:`check_procfile`: ``Procfile`` (generated: ``python -m vigie.ops.procfile``);
- :func:`check_prometheus`: ``deploy/prometheus/prometheus.yml`` (generated:
  ``python -m vigie.ops.prometheus --compose``);
- :func:`check_prometheus_kubernetes`: ``deploy/prometheus/prometheus-kubernetes.yml`` finds
  every piece's pods of ``deploy/kubernetes/base``.

The gateway's config needs no check: it is rendered from the registry whenever it is written.
``python -m vigie.ops.artifacts`` runs every check on the repository (exit 1 on any problem).
These read YAML with PyYAML (installed with uvicorn[standard], and in the dev extras).
"""

from __future__ import annotations

from pathlib import Path

from vigie.ops.artifacts.compose import check_compose
from vigie.ops.artifacts.dockerfile import check_dockerfile
from vigie.ops.artifacts.generated import check_procfile, check_prometheus
from vigie.ops.artifacts.kubernetes import check_kubernetes, check_prometheus_kubernetes
from vigie.ops.registry import Registry, load
from vigie.settings import REPO_ROOT

__all__ = [
    "check_all",
    "check_compose",
    "check_dockerfile",
    "check_kubernetes",
    "check_procfile",
    "check_prometheus",
    "check_prometheus_kubernetes",
]


def check_all(registry: Registry | None = None, root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Every check on the files under ``root`` (default: this repository), by file."""
    registry = registry or load()
    deploy = root / "deploy"
    return {
        "docker-compose.yml": check_compose(registry, root / "docker-compose.yml"),
        "Dockerfile": check_dockerfile(registry, root / "Dockerfile"),
        "Procfile": check_procfile(registry, root / "Procfile"),
        "deploy/kubernetes": check_kubernetes(registry, deploy / "kubernetes"),
        "deploy/prometheus/prometheus.yml": check_prometheus(
            registry, deploy / "prometheus" / "prometheus.yml"
        ),
        "deploy/prometheus/prometheus-kubernetes.yml": check_prometheus_kubernetes(
            registry,
            deploy / "prometheus" / "prometheus-kubernetes.yml",
            deploy / "kubernetes" / "base",
        ),
    }
