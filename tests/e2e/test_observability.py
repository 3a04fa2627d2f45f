"""The ops view on the running fleet: a real Prometheus, configured by vigie.ops.prometheus with the
committed rules, scrapes every piece; and every metric the Grafana dashboard and the alert rules
read is really exported once the fleet has served some traffic."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _under_ci
from tests.deploy.test_grafana import dashboard_exprs
from tests.deploy.test_prometheus import defined_series, load_rules, rule_exprs
from tests.services.turbine_nox.synthetic import measurements, turbine_frame
from tests.support.fleet import Fleet
from tests.support.receivers import HttpReceiver
from tests.support.servers import free_port, wait_until
from vigie.contract.level_event import LevelEvent
from vigie.contract.levels import Level
from vigie.ops.fleet import PORTS, PREDICTION_PIECES, FleetSettings
from vigie.ops.prometheus import JOB, RULES_DIR, referenced_metrics, render, scrape_config

pytestmark = pytest.mark.integration

FRAME = turbine_frame(rows_per_year=50, years=(2015,), seed=11)
OBS_ASSET = "GT-E2E-OBS"  # turbine-nox, default limits (NORMAL): predictions, a retry, feedback
ALERT_ASSET = "GT-E2E-OBS-ALERT"  # a CRITIQUE level event -> an alert -> a webhook notification
LEVELS_STREAM = "vigie:levels"  # design.md section 3

# Read by the dashboard or the rules but born only on a failure that this shared fleet cannot be
# put through without breaking the other end-to-end modules (they run on the same fleet):
UNEXERCISED = {
    "vigie_level_event_publish_failures_total": "a publish to Redis failing: Redis down",
    "vigie_level_outbox_depth": "set only while the local outbox holds events: Redis down",
    "vigie_prediction_log_errors_total": "a prediction-log batch write failing: database down",
}


def scrape(fleet: Fleet, piece: str) -> dict[str, list[Any]]:
    """Series name -> samples of one piece's own /metrics (not routed by the gateway)."""
    r = httpx.get(f"http://127.0.0.1:{fleet.ports[piece]}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    series: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(sample)
    return series


def exported(fleet: Fleet) -> dict[str, set[str]]:
    """Series name -> the pieces that export it."""
    out: dict[str, set[str]] = {}
    for piece in fleet.ports:
        for name in scrape(fleet, piece):
            out.setdefault(name, set()).add(piece)
    return out


@pytest.fixture(scope="module")
def traffic(fleet: Fleet) -> Iterator[dict[str, Any]]:
    """Requests that bring every metric of the dashboard and the rules to life (except
    UNEXERCISED): probes, predictions, an idempotent retry, feedback, and one alert notified."""
    receiver = HttpReceiver().start()
    admin = {"Authorization": f"Bearer {fleet.token('subscribers:admin alerts:read')}"}
    token = fleet.token("predict:turbine-nox feedback:turbine-nox")
    user = {"Authorization": f"Bearer {token}"}
    sub_id = None
    try:
        with fleet.client() as c:
            for piece in fleet.ports:
                path = "/healthz" if piece == "alerting" else "/readyz"
                assert c.get(f"/{piece}{path}").status_code == 200, piece

            body = {"asset_id": OBS_ASSET, "measurements": measurements(FRAME, slice(0, 3))}
            retry = {**user, "Idempotency-Key": "e2e-observability-1"}
            first = c.post("/turbine-nox/v1/predict", headers=retry, json=body)
            assert first.status_code == 200, first.text
            again = c.post("/turbine-nox/v1/predict", headers=retry, json=body)
            assert again.status_code == 200 and again.json() == first.json()

            observations = [{"timestamp": p["timestamp"], "value": p["nox_mg_m3"] + 2.0}
                            for p in first.json()["predictions"]]  # fmt: skip

            def matched() -> bool:  # the prediction log is written off the hot path
                r = c.post("/turbine-nox/v1/feedback", headers=user,
                           json={"asset_id": OBS_ASSET, "observations": observations})  # fmt: skip
                assert r.status_code == 200, r.text
                return bool(r.json()["matched_forecasts"] == len(observations))

            wait_until(matched, timeout=30, interval=0.5, what="feedback matched to predictions")

            r = c.post(
                "/alerting/v1/subscribers", headers=admin,
                json={"name": "e2e-observability", "channel": "webhook",
                      "target": receiver.url + "/observability", "min_level": "ALERTE",
                      "services": ["turbine-nox"], "assets": [ALERT_ASSET]},
            )  # fmt: skip
            assert r.status_code == 201, r.text
            sub_id = r.json()["id"]

        # A level event as a prediction service publishes it, straight to the durable stream.
        now = datetime.now(UTC)
        event = LevelEvent.new(
            service="turbine-nox", asset_id=ALERT_ASSET, level=Level.CRITIQUE, observed_at=now,
            value=99.0, unit="mg/m3", threshold=75.0, model_version="e2e-observability",
            message="NOx forecast 99.0 mg/m3 above permit 75 (e2e observability)",
        )  # fmt: skip
        with redis.Redis(host="127.0.0.1", port=fleet.redis_port) as r_:
            r_.xadd(LEVELS_STREAM, {"event": event.to_json()})
        [hook] = receiver.wait_for_requests(1, timeout=30)
        assert hook.json()["alerts"][0]["labels"]["asset_id"] == ALERT_ASSET

        def notified() -> bool:
            # Counted once the delivery's outcome is stored; the open-alert gauge is refreshed
            # by alerting's housekeeping (every VIGIE_REMINDER_CHECK_S, 30 s).
            names = scrape(fleet, "alerting")
            outcomes = {s.labels["outcome"] for s in names.get("vigie_notifications_total", [])}
            opened = {(s.labels["service"], s.labels["level"])
                      for s in names.get("vigie_open_alerts", []) if s.value > 0}  # fmt: skip
            return (
                "sent" in outcomes
                and "vigie_notification_delivery_seconds_bucket" in names
                and ("turbine-nox", "CRITIQUE") in opened
            )

        wait_until(
            notified, timeout=60, interval=0.5, what="alerting's alert and notification metrics"
        )
        yield {"alert_asset": ALERT_ASSET}
    finally:
        if sub_id is not None:
            with fleet.client() as c:
                c.delete(f"/alerting/v1/subscribers/{sub_id}", headers=admin)
        receiver.stop()


def test_every_metric_of_the_dashboard_and_the_rules_is_exported(
    fleet: Fleet, traffic: dict[str, Any]
) -> None:
    wanted = set().union(*(referenced_metrics(e) for e in [*dashboard_exprs(), *rule_exprs()]))
    assert set(UNEXERCISED) <= wanted, "UNEXERCISED names a metric nothing reads any more"
    assert set(UNEXERCISED) <= set(defined_series()), "UNEXERCISED names an unknown metric"
    by_name = exported(fleet)
    missing = sorted(wanted - set(by_name) - set(UNEXERCISED))
    assert missing == [], f"read by the dashboard or the rules, exported by no piece: {missing}"
    # Where they come from: the runtime's metrics from every piece, alerting's from alerting.
    assert by_name["vigie_http_requests_total"] == set(PORTS)
    assert by_name["vigie_model_ready"] == set(PREDICTION_PIECES)
    for name in ("vigie_notifications_total", "vigie_levels_stream_lag", "vigie_open_alerts"):
        assert by_name[name] == {"alerting"}, name


def test_every_prediction_service_exports_a_ready_verified_model(
    fleet: Fleet, traffic: dict[str, Any]
) -> None:
    for piece in PREDICTION_PIECES:
        series = scrape(fleet, piece)
        [ready] = series["vigie_model_ready"]
        assert ready.labels["service"] == piece and ready.value == 1.0
        [info] = series["vigie_model_info"]
        assert info.labels["service"] == piece and len(info.labels["sha256"]) == 64


# -- a real Prometheus ---------------------------------------------------------------------------


@dataclass
class PrometheusServer:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])


@pytest.fixture
def prometheus(fleet: Fleet, traffic: dict[str, Any], tmp_path: Path) -> Iterator[PrometheusServer]:
    """Prometheus on a free port, scraping this fleet every second with the committed rules."""
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "prometheus is not installed: apt-get install prometheus"
        if _under_ci():
            pytest.fail(f"{reason} (CI is set: the scrape of the fleet must be tested)",
                        pytrace=False)  # fmt: skip
        pytest.skip(reason)
    settings = FleetSettings(
        host="127.0.0.1", ports=fleet.ports, services=list(PREDICTION_PIECES), upstream_hosts={}
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(render(scrape_config(
        settings, RULES_DIR, scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s"
    )))  # fmt: skip
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = PrometheusServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{server.log()}")
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, interval=0.2, what="prometheus /-/ready")
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_prometheus_scrapes_every_piece_and_loads_the_rules(
    fleet: Fleet, prometheus: PrometheusServer
) -> None:
    def targets_up() -> list[dict[str, Any]] | None:
        active = prometheus.api("targets", state="active")["activeTargets"]
        if len(active) == len(PORTS) and all(t["health"] == "up" for t in active):
            return list(active)
        return None

    try:
        active = wait_until(targets_up, timeout=60, interval=0.5, what="every target up")
    except TimeoutError:
        pytest.fail(f"targets: {prometheus.api('targets')['activeTargets']}")
    assert {t["labels"]["service"]: t["scrapeUrl"] for t in active} == {
        piece: f"http://127.0.0.1:{port}/metrics" for piece, port in fleet.ports.items()
    }
    assert {t["labels"]["job"] for t in active} == {JOB}

    rules = load_rules()
    expected = {(r["group"], r["alert"]) for r in rules}

    def evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules", type="alert")["groups"]
        loaded = [(g["name"], r) for g in groups for r in g["rules"]]
        if {(g, r["name"]) for g, r in loaded} != expected:
            return None
        return [r for _, r in loaded] if all(r["health"] == "ok" for _, r in loaded) else None

    loaded = wait_until(evaluated, timeout=30, interval=0.5, what="every rule evaluated, ok")
    assert {r["labels"]["severity"] for r in loaded} <= {"critical", "warning"}

    # Stored with the labels the rules and the dashboard expect.
    def stored(promql: str) -> list[dict[str, Any]]:
        return list(wait_until(lambda: prometheus.query(promql), timeout=30, interval=0.5,
                               what=promql))  # fmt: skip

    counted = stored("count by (service) (vigie_http_requests_total)")
    assert {s["metric"]["service"] for s in counted} == set(PORTS)
    [lag] = stored("vigie_levels_stream_lag")
    assert lag["metric"]["service"] == "alerting" and lag["metric"]["job"] == JOB
    # honor_labels: alerting's series keep the prediction service they are about.
    opened = stored('vigie_open_alerts{service="turbine-nox"}')
    assert {s["metric"]["instance"] for s in opened} == {f"127.0.0.1:{fleet.ports['alerting']}"}
    assert prometheus.query('{exported_service!=""}') == []
