"""deploy/prometheus: the scrape configurations, the alert rules and their unit tests.

``promtool`` (Debian's ``prometheus`` package) checks the committed and the generated
configurations, checks the rules and runs ``promtool test rules``. Without it those tests skip,
except under CI (``CI`` set), where a skip would hide that nothing was checked: there they fail.
The rest runs everywhere: the committed prometheus.yml is exactly what vigie.ops.prometheus
generates, the Kubernetes relabeling turns the manifests' pods into the same targets, and every
metric and label the rules use is one the code defines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import REPO_ROOT, _under_ci
from vigie.obs.metrics import ServiceMetrics
from vigie.ops.artifacts.kubernetes import pod_targets, relabel
from vigie.ops.fleet import FleetSettings
from vigie.ops.prometheus import (
    COMPOSE_CONFIG,
    JOB,
    RULES_DIR,
    compose_config,
    compose_fleet,
    referenced_metrics,
    render,
    sample_names,
    scrape_config,
)
from vigie.ops.registry import load
from vigie_services.alerting.metrics import AlertingMetrics

PORTS = load().ports  # every piece of the registry, on its design.md port

PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
KUBERNETES_CONFIG = PROM_DIR / "prometheus-kubernetes.yml"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
KUBE_BASE = REPO_ROOT / "deploy" / "kubernetes" / "base"

# Labels every scraped series has besides its own: the job's and the target's (prometheus.yml).
TARGET_LABELS = frozenset({"job", "instance", "service"})
SEVERITIES = frozenset({"critical", "warning"})


# -- what the code defines ---------------------------------------------------------------------


def defined_series() -> dict[str, frozenset[str]]:
    """Every series name the code can export (counters with ``_total``, histograms as
    ``_bucket``/``_sum``/``_count``) -> its label names: the runtime's metrics
    (vigie/obs/metrics.py, every piece) and alerting's own."""
    registry = CollectorRegistry()
    ServiceMetrics("any", registry=registry)
    AlertingMetrics(registry)
    series: dict[str, frozenset[str]] = {}
    for collector in set(registry._names_to_collectors.values()):
        labels = frozenset(collector._labelnames)
        for family in collector.collect():
            for name in sample_names(family.name, family.type):
                series[name] = labels | {"le"} if name.endswith("_bucket") else labels
    return series


def label_problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """Label names ``expr`` uses on Vigie series that those series do not have."""
    problems = []
    for name, matchers in re.findall(r"\b(vigie_\w+)\s*\{([^{}]*)\}", expr):
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            if name in series and label not in series[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    used = [s for s in referenced_metrics(expr) if s in series]
    if used:
        allowed = TARGET_LABELS.union(*(series[s] for s in used))
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in re.findall(r"\w+", group):
                if label not in allowed:
                    problems.append(f"{label!r} is a label of none of {sorted(used)}")
    return problems


def unknown_series(exprs: Iterable[str], series: Iterable[str]) -> dict[str, list[str]]:
    """Series names used by each expression that are not in ``series``."""
    known = set(series)
    out = {}
    for expr in exprs:
        missing = sorted(referenced_metrics(expr) - known)
        if missing:
            out[expr] = missing
    return out


def load_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/rules/*.yml (with its group's name as ``group``)."""
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend({**rule, "group": group["name"]} for rule in group["rules"])
    return rules


def rule_exprs() -> list[str]:
    return [rule["expr"] for rule in load_rules()]


# -- promtool --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed: apt-get install prometheus (it ships promtool)"
        if _under_ci():
            pytest.fail(
                f"{reason} (CI is set: the Prometheus files must be checked)", pytrace=False
            )
        pytest.skip(reason)
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_committed_compose_config_and_its_rules(promtool: str) -> None:
    done = run(promtool, "check", "config", COMPOSE_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    # rule_files is relative to the config: the rules were found and checked with it.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout, done.stdout
    assert f"SUCCESS: {len(load_rules())} rules found" in done.stdout, done.stdout


def test_promtool_accepts_the_config_generated_for_a_local_fleet(
    promtool: str, tmp_path: Path
) -> None:
    fleet = FleetSettings(ports={"auth": 18090, "turbine-nox": 18104}, services=["turbine-nox"])
    path = tmp_path / "prometheus.yml"
    path.write_text(render(scrape_config(fleet, RULES_DIR)))
    done = run(promtool, "check", "config", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in done.stdout, done.stdout


def test_promtool_accepts_the_kubernetes_config(promtool: str) -> None:
    done = run(promtool, "check", "config", KUBERNETES_CONFIG)
    if "field kubernetes_sd_configs not found" in done.stdout + done.stderr:
        # Debian builds Prometheus without Kubernetes discovery; the relabeling is checked by
        # test_kubernetes_relabeling_finds_every_piece_of_the_manifests below.
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's)")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in done.stdout, done.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(promtool: str, path: Path) -> None:
    done = run(promtool, "test", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


# -- the configurations ----------------------------------------------------------------------


def test_the_committed_config_is_what_the_generator_writes() -> None:
    assert COMPOSE_CONFIG.read_text() == compose_config(), (
        "deploy/prometheus/prometheus.yml is stale: "
        "python -m vigie.ops.prometheus --compose > deploy/prometheus/prometheus.yml"
    )


def test_the_compose_config_scrapes_every_piece_by_its_service_name() -> None:
    config = yaml.safe_load(COMPOSE_CONFIG.read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == JOB and job["honor_labels"] is True
    assert job["metrics_path"] == "/metrics"
    targets = {c["labels"]["service"]: c["targets"] for c in job["static_configs"]}
    assert targets == {piece: [f"{piece}:{port}"] for piece, port in PORTS.items()}
    assert "gateway" not in targets  # nginx serves no /metrics


@pytest.mark.parametrize(
    "fleet",
    [
        compose_fleet(),
        FleetSettings(ports={"auth": 18090, "alerting": 18100}, services=["turbine-nox"]),
        FleetSettings(host="10.1.2.3", upstream_hosts={"alerting": "alerting.internal"}),
    ],
)
def test_the_yaml_written_reads_back_as_the_config(fleet: FleetSettings) -> None:
    config = scrape_config(fleet, "/etc/prometheus rules", scrape_interval="1s",
                           scrape_timeout="1s")  # fmt: skip
    assert yaml.safe_load(render(config, header="a\nb: not yaml")) == config


def test_a_local_fleet_on_free_ports_is_scraped_where_it_listens() -> None:
    fleet = FleetSettings(
        host="127.0.0.1",
        ports={"auth": 20001, "alerting": 20002, "turbine-nox": 20003},
        services=["turbine-nox"],
        upstream_hosts={"alerting": "alerting.local"},
    )
    config = scrape_config(fleet, "/srv/rules", scrape_interval="2s", evaluation_interval="3s",
                           scrape_timeout="1s")  # fmt: skip
    assert config["global"] == {
        "scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "3s"
    }  # fmt: skip
    assert config["rule_files"] == ["/srv/rules/*.yml"]
    [job] = config["scrape_configs"]
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:20001"], "labels": {"service": "auth"}},
        {"targets": ["alerting.local:20002"], "labels": {"service": "alerting"}},
        {"targets": ["127.0.0.1:20003"], "labels": {"service": "turbine-nox"}},
    ]


def test_the_kubernetes_config_has_the_same_job_rules_and_labels() -> None:
    kube = yaml.safe_load(KUBERNETES_CONFIG.read_text())
    compose = yaml.safe_load(COMPOSE_CONFIG.read_text())
    assert kube["global"] == compose["global"]
    assert kube["rule_files"] == compose["rule_files"]
    [kjob], [cjob] = kube["scrape_configs"], compose["scrape_configs"]
    for key in ("job_name", "honor_labels", "metrics_path", "scheme"):
        assert kjob[key] == cjob[key], key
    assert kjob["kubernetes_sd_configs"] == [{"role": "pod"}]


def pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBE_BASE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("Deployment", "StatefulSet"):
                yield doc["metadata"]["name"], doc["spec"]["template"]


def test_kubernetes_relabeling_finds_every_piece_of_the_manifests() -> None:
    templates = dict(pod_templates())
    if not templates:
        pytest.skip("deploy/kubernetes/base has no Deployment yet")
    [job] = yaml.safe_load(KUBERNETES_CONFIG.read_text())["scrape_configs"]
    found: dict[str, dict[str, str]] = {}
    for name, template in templates.items():
        for target in pod_targets(job, name, template):  # one per declared container port
            assert name not in found, f"{name}: two targets for one pod"
            found[name] = target
    assert set(found) == set(PORTS), "pieces scraped on Kubernetes"
    for piece, target in found.items():
        assert target["service"] == piece
        assert target["__address__"] == f"10.0.0.7:{PORTS[piece]}"
        assert target["__metrics_path__"] == "/metrics"
        assert target["namespace"] == "vigie" and target["pod"] == f"{piece}-abc12"
    running = {
        "__address__": "10.0.0.8:8104",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "turbine-nox",
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "vigie",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "8104",
        "__meta_kubernetes_pod_phase": "Running",
    }
    assert relabel(running, job["relabel_configs"]) is not None
    for finished in (
        {**running, "__meta_kubernetes_pod_phase": "Succeeded"},
        {**running, "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "x"},
        {**running, "__meta_kubernetes_pod_annotation_prometheus_io_scrape": ""},
    ):
        assert relabel(finished, job["relabel_configs"]) is None, finished  # fmt: skip


# -- the rules -------------------------------------------------------------------------------


def test_every_metric_of_the_rules_is_defined_in_the_code() -> None:
    series = defined_series()
    assert unknown_series(rule_exprs(), series) == {}
    used = set().union(*(referenced_metrics(e) for e in rule_exprs()))
    # What the brief asks the rules to watch, by the names the code exports.
    assert {
        "vigie_http_requests_total", "vigie_http_request_duration_seconds_bucket",
        "vigie_model_ready", "vigie_levels_stream_lag", "vigie_levels_stream_pending",
        "vigie_notifications_total", "vigie_notifications_dead", "vigie_level_outbox_depth",
        "vigie_level_event_publish_failures_total",
    } <= used  # fmt: skip


def test_every_label_of_the_rules_is_one_the_metrics_have() -> None:
    series = defined_series()
    problems = {e: p for e in rule_exprs() if (p := label_problems(e, series))}
    assert problems == {}


def test_the_label_check_catches_a_wrong_label() -> None:
    series = defined_series()
    wrong = 'sum by (channel) (rate(vigie_http_requests_total{code="5"}[5m]))'
    assert label_problems(wrong, series) == [
        "vigie_http_requests_total has no label 'code'",
        "'channel' is a label of none of ['vigie_http_requests_total']",
    ]
    assert unknown_series(["rate(vigie_http_requests[5m])"], series) == {
        "rate(vigie_http_requests[5m])": ["vigie_http_requests"]
    }


def test_the_notification_outcomes_in_the_rules_are_the_code_s() -> None:
    # vigie_notifications_total{outcome}: delivery.py records sent, retrying or dead;
    # consumer.py records suppressed.
    code = (REPO_ROOT / "services" / "vigie_services" / "alerting").glob("*.py")
    source = "\n".join(p.read_text() for p in code)
    for outcome in ("sent", "retrying", "dead", "suppressed"):
        assert f'"{outcome}"' in source, outcome
    outcomes = set()
    for expr in rule_exprs():
        for values in re.findall(r'outcome\s*=~?\s*"([^"]*)"', expr):
            outcomes |= set(values.split("|"))
    assert outcomes and outcomes <= {"sent", "retrying", "dead", "suppressed"}


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    rules = load_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 60, rule["alert"]
        assert rule["alert"].startswith("Vigie"), rule["alert"]


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fired, quiet = set(), set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert [(path.parent / f).resolve() for f in doc["rule_files"]] == [
            p.resolve() for p in RULE_FILES
        ]
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in load_rules()}
    assert alerts - fired == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen staying quiet"
