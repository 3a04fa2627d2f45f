"""deploy/grafana: the provisioning files and the fleet dashboard.

The dashboard is valid JSON with the panels ops need, a `service` variable, queries through the
provisioned Prometheus, and only metrics and labels the code defines. That they are really exported
by a running fleet is checked end to end by tests/e2e/test_observability.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.test_prometheus import defined_series, label_problems, unknown_series
from vigie.ops.prometheus import JOB, SCRAPE_INTERVAL, referenced_metrics

GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "vigie.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "vigie.yml"

# Panel title -> metrics it must show (the ops view the issue asks for).
EXPECTED_PANELS: dict[str, set[str]] = {
    "Pieces up": set(),
    "Model ready": {"vigie_model_ready"},
    "Open alerts": {"vigie_open_alerts"},
    "Firing Prometheus alerts": set(),
    "Request rate": {"vigie_http_requests_total"},
    "Errors: 5xx ratio": {"vigie_http_requests_total"},
    "Latency p50 and p99": {"vigie_http_request_duration_seconds_bucket"},
    "Predictions by level": {"vigie_predictions_total"},
    "Level events by outcome": {
        "vigie_level_events_total",
        "vigie_level_event_publish_failures_total",
    },
    "Local outbox depth": {"vigie_level_outbox_depth"},
    "Open alerts by service and level": {"vigie_open_alerts"},
    "Notification outcomes": {"vigie_notifications_total"},
    "vigie:levels stream: lag and pending": {
        "vigie_levels_stream_lag",
        "vigie_levels_stream_pending",
    },
    "Dead letters": {"vigie_notifications_dead"},
}


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed panels included (rows themselves left out)."""
    for panel in doc["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel queries and the variables' queries."""
    doc = dashboard()
    exprs = [t["expr"] for p in panels(doc) for t in p["targets"]]
    for var in doc["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_the_dashboard_has_the_panels_of_the_ops_view() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"] == "Vigie fleet"
    by_title = {p["title"]: p for p in panels(doc)}
    assert len(by_title) == len(list(panels(doc))), "panel titles are unique"
    for title, metrics in EXPECTED_PANELS.items():
        assert title in by_title, title
        exprs = [t["expr"] for t in by_title[title]["targets"]]
        assert exprs and all(e.strip() for e in exprs), title
        used = set().union(*(referenced_metrics(e) for e in exprs))
        assert metrics <= used, (title, used)
    latency = " ".join(t["expr"] for t in by_title["Latency p50 and p99"]["targets"])
    assert "histogram_quantile(0.5," in latency and "histogram_quantile(0.99," in latency
    levels = by_title["Predictions by level"]["targets"][0]["expr"]
    assert re.search(r"by \([^)]*\blevel\b", levels), levels


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    doc = dashboard()
    rows = [p for p in doc["panels"] if p["type"] == "row"]
    ids = [p["id"] for p in [*rows, *panels(doc)]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in doc["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for y in range(g["y"], g["y"] + g["h"]):
            for x in range(g["x"], g["x"] + g["w"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_queries_go_to_the_chosen_prometheus_and_follow_the_service_variable() -> None:
    doc = dashboard()
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    service = variables["service"]
    assert service["type"] == "query" and service["multi"] and service["includeAll"]
    query = service["query"]["query"] if isinstance(service["query"], dict) else service["query"]
    assert query == f'label_values(up{{job="{JOB}"}}, service)'
    ds = {"type": "prometheus", "uid": "${datasource}"}
    filtered = 0
    for panel in panels(doc):
        assert panel["datasource"] == ds, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ds, panel["title"]
            filtered += 'service=~"$service"' in target["expr"]
    assert filtered >= 15, "the service variable filters the per-service panels"


def test_every_metric_of_the_dashboard_is_defined_in_the_code() -> None:
    series = defined_series()
    assert unknown_series(dashboard_exprs(), series) == {}


def test_every_label_of_the_dashboard_is_one_the_metrics_have() -> None:
    series = defined_series()
    problems = {e: p for e in dashboard_exprs() if (p := label_problems(e, series))}
    assert problems == {}


def test_the_provisioned_datasource_is_the_fleet_s_prometheus() -> None:
    doc = yaml.safe_load(DATASOURCES.read_text())
    assert doc["apiVersion"] == 1
    [ds] = doc["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy" and ds["isDefault"] is True
    assert ds["url"] == "http://prometheus:9090"
    # $__rate_interval needs Grafana to know the scrape interval.
    assert ds["jsonData"]["timeInterval"] == SCRAPE_INTERVAL
    assert dashboard()["templating"]["list"][0]["current"]["value"] == ds["uid"]


def test_the_dashboard_provider_loads_the_dashboards_folder_from_files() -> None:
    doc = yaml.safe_load(PROVIDERS.read_text())
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["folder"] == "Vigie"
