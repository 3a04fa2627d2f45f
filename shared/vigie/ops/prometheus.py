"""Prometheus configuration for the fleet: which pieces to scrape, where, and with which labels.

Every piece (auth, alerting, the prediction services) serves ``GET /metrics`` on its own port,
aggregated over its gunicorn workers, so Prometheus scrapes one target per piece; the gateway does
not route ``/metrics``. Each target gets the label ``service`` (the piece's name) in job ``vigie``.

The targets are the pieces of the registry (:mod:`vigie.ops.registry`).
``deploy/prometheus/prometheus.yml`` is :func:`render` of :func:`scrape_config` for
docker-compose (each piece reached by its compose service name, which is the piece's name;
:func:`vigie.ops.artifacts.check_prometheus` keeps the two identical). For the fleet of
``make run`` on this machine::

    .venv/bin/python -m vigie.ops.prometheus > var/prometheus/prometheus.yml   # VIGIE_FLEET_* ports
    prometheus --config.file=var/prometheus/prometheus.yml --storage.tsdb.path=var/prometheus/data

``honor_labels: true``: the metrics already carry a ``service`` label. For a prediction service it
is the piece's own name; for alerting's ``vigie_open_alerts`` and ``vigie_alerts_opened_total`` it
names the prediction service the alert is about and must stay so. Without ``honor_labels``
Prometheus would overwrite it with the target's and move it to ``exported_service``. Series
without the label (``up``, alerting's ``vigie_levels_stream_lag``, ...) get the target's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vigie.ops.fleet import FleetSettings
from vigie.ops.registry import Registry, load
from vigie.settings import REPO_ROOT

JOB = "vigie"
SCRAPE_INTERVAL = "15s"
SCRAPE_TIMEOUT = "10s"
EVALUATION_INTERVAL = "15s"
DEPLOY_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_DIR = DEPLOY_DIR / "rules"
COMPOSE_CONFIG = DEPLOY_DIR / "prometheus.yml"

COMPOSE_HEADER = """\
Prometheus for the Vigie fleet under docker-compose: every piece is scraped on its own port by its
compose service name (= the piece's name); the gateway does not expose /metrics.
Generated: `python -m vigie.ops.prometheus --compose > deploy/prometheus/prometheus.yml`
(vigie.ops.artifacts.check_prometheus, run by tests/deploy, checks it is exactly that output).
Mount deploy/prometheus/ as /etc/prometheus/ (rule_files is relative to this file).
Kubernetes: prometheus-kubernetes.yml (pods found by their prometheus.io/* annotations).
No Alertmanager ships with the fleet: to route the alerts of rules/vigie.yml, add
  alerting: {alertmanagers: [{static_configs: [{targets: ["alertmanager:9093"]}]}]}
honor_labels: true keeps the `service` label the metrics carry (alerting's vigie_open_alerts
names the prediction service an alert is about); series without one get the target's."""


def targets(fleet: FleetSettings) -> dict[str, str]:
    """``host:port`` of every piece of ``fleet``, in start order."""
    return {piece: f"{fleet.upstream_host(piece)}:{fleet.port(piece)}" for piece in fleet.pieces}


def scrape_config(
    fleet: FleetSettings,
    rules_dir: str | Path = "rules",
    *,
    scrape_interval: str = SCRAPE_INTERVAL,
    scrape_timeout: str = SCRAPE_TIMEOUT,
    evaluation_interval: str = EVALUATION_INTERVAL,
) -> dict[str, Any]:
    """The Prometheus configuration (as a dict) that scrapes every piece of ``fleet``.

    ``rules_dir`` holds the rule files (``*.yml``); relative to the config file's folder when not
    absolute. ``scrape_timeout`` must not exceed ``scrape_interval`` (Prometheus refuses it).
    """
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_timeout,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [f"{rules_dir}/*.yml"],
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": True,
                "metrics_path": "/metrics",
                "scheme": "http",
                "static_configs": [
                    {"targets": [target], "labels": {"service": piece}}
                    for piece, target in targets(fleet).items()
                ],
            }
        ],
    }


# -- metric names in PromQL (the tests check rules and dashboard against the code with these) ---
METRIC_NAME = re.compile(r"\bvigie_[A-Za-z0-9_]+")
SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def referenced_metrics(expr: str) -> set[str]:
    """The Vigie series names (``vigie_*``) a PromQL expression reads."""
    return set(METRIC_NAME.findall(expr))


def sample_names(family: str, kind: str) -> list[str]:
    """The series names Prometheus stores for a metric family of prometheus-client: a counter
    ``x`` is ``x_total``; a histogram ``x`` is ``x_bucket``, ``x_sum`` and ``x_count``."""
    return [family + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ("",))]


def compose_fleet(registry: Registry | None = None) -> FleetSettings:
    """The fleet of docker-compose: every piece of ``registry`` (default: the installed one),
    design.md's ports, reached at their compose service names (the pieces' names)."""
    registry = registry or load()
    return FleetSettings(
        registry=registry,
        ports=registry.ports,
        services=list(registry.prediction_names),
        upstream_hosts={},
        upstream_by_name=True,
    )


def compose_config(registry: Registry | None = None) -> str:
    """The text of ``deploy/prometheus/prometheus.yml`` for ``registry`` (default: installed)."""
    return render(scrape_config(compose_fleet(registry), "rules"), header=COMPOSE_HEADER)


# -- a small YAML writer (block style), enough for a Prometheus configuration -----------------
_PLAIN = re.compile(r"[A-Za-z_][\w.-]*(:[0-9]+)?|/[\w./-]*|[0-9]+(ms|s|m|h|d|w|y)")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: object, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _block(item):
                out.append(f"{pad}{_scalar(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_scalar(key)}: {_flow(item)}")
    elif isinstance(value, list):
        for item in value:
            if _block(item):
                first, *rest = _lines(item, indent + 2)
                out.append(f"{pad}- {first[indent + 2 :]}")
                out.extend(rest)
            else:
                out.append(f"{pad}- {_flow(item)}")
    else:
        out.append(pad + _scalar(value))
    return out


def _flow(value: object) -> str:
    """A scalar, or a list of scalars, on one line (strings of a list quoted, as in JSON)."""
    if isinstance(value, list):
        return (
            "[" + ", ".join(json.dumps(v) if isinstance(v, str) else _flow(v) for v in value) + "]"
        )
    if isinstance(value, dict):
        assert not value, "a non-empty mapping is written in block style"
        return "{}"
    return _scalar(value)


def _block(value: object) -> bool:
    """Written over several lines: a non-empty mapping, a list holding a mapping or a list."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(isinstance(v, dict | list) for v in value)


def render(config: dict[str, Any], header: str = "") -> str:
    """``config`` as YAML text, after ``header`` as comment lines."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comments, *_lines(config, 0)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vigie.ops.prometheus",
        description="Print a Prometheus configuration that scrapes every piece of the fleet "
        "(the local fleet of VIGIE_FLEET_* by default).",
    )
    parser.add_argument(
        "--compose", action="store_true",
        help="the docker-compose configuration (deploy/prometheus/prometheus.yml)",
    )  # fmt: skip
    parser.add_argument(
        "--rules", default=str(RULES_DIR), help="folder of the rule files (default: %(default)s)"
    )
    parser.add_argument("--scrape-interval", default=SCRAPE_INTERVAL)
    parser.add_argument("--scrape-timeout", default=SCRAPE_TIMEOUT)
    parser.add_argument("--evaluation-interval", default=EVALUATION_INTERVAL)
    args = parser.parse_args(argv)
    if args.compose:
        sys.stdout.write(compose_config())
        return 0
    config = scrape_config(
        FleetSettings(), args.rules, scrape_interval=args.scrape_interval,
        scrape_timeout=args.scrape_timeout, evaluation_interval=args.evaluation_interval,
    )  # fmt: skip
    sys.stdout.write(render(config, header="Prometheus for the local Vigie fleet (VIGIE_FLEET_*)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
