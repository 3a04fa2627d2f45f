"""The fleet bench's parts that can be wrong (bench/): wrk's output, the bodies each service's
replay code builds, the recorded model calls and the baseline's row, the report, the /proc
readings; and one short run of the real wrk against the real baseline app."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from rich.console import Console
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier

from bench import bodies as bd
from bench import fleet, report, wrk
from bench.baseline import BaselineServer, estimators_of, method_of
from tests.conftest import _under_ci
from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.services.gamma_classifier.synthetic import write_gamma_data
from tests.services.solar_flare.synthetic import simulate, write_solar_data
from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.receivers import HttpReceiver
from tests.support.servers import free_port
from tests.support.synthetic import write_transformer_data
from vigie.serve.schemas import ASSET_ID_PATTERN
from vigie.settings import VigieSettings
from vigie_services import load_service

WRK_LINE = (
    'VIGIE_BENCH_JSON {"requests":1234,"duration_us":2000000,"bytes":99,'
    '"errors":{"connect":0,"read":1,"write":0,"status":7,"timeout":2},'
    '"latency_us":{"min":100,"mean":812.5,"stdev":10.0,"max":9000,'
    '"p50":750,"p90":1500,"p99":4200,"p999":8000}}'
)


# ------------------------------------------------------------------------------ wrk output


def test_wrk_output_is_parsed_among_wrks_own_lines() -> None:
    text = (
        "Running 2s test @ https://127.0.0.1:8443/turbine-nox/v1/predict\n"
        "  2 threads and 8 connections\n"
        "  1234 requests in 2.00s, 99B read\n"
        "  Non-2xx or 3xx responses: 7\n"
        f"{WRK_LINE}\n"
    )
    r = wrk.parse_output(text, connections=8, threads=2)
    assert (r.requests, r.duration_s, r.connections, r.threads) == (1234, 2.0, 8, 2)
    assert r.rps == pytest.approx(617.0)
    assert (r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms) == (0.75, 1.5, 4.2, 9.0)
    assert r.errors == {"connect": 0, "read": 1, "write": 0, "status": 7, "timeout": 2}
    assert r.error_total == 10  # answers >= 400 count as errors
    assert r.wrk_cpu_pct is None
    assert r.to_dict()["error_total"] == 10


def test_wrk_output_without_the_result_line_is_an_error() -> None:
    with pytest.raises(wrk.WrkError, match="no VIGIE_BENCH_JSON line"):
        wrk.parse_output(
            "unable to connect to 127.0.0.1:1 Connection refused\n", connections=1, threads=1
        )


def test_wrk_threads_never_exceed_connections() -> None:
    assert wrk.default_threads(1) == 1
    assert 1 <= wrk.default_threads(64) <= 2


# ------------------------------------------------------------------- bodies of each service


def _solar(d: Path) -> object:
    return write_solar_data(d, simulate(160, seed=0))


WRITERS: dict[str, Callable[[Path], object]] = {
    "solar-flare": _solar,
    "gamma-classifier": lambda d: write_gamma_data(d, n=250),
    "transformer-temperature": lambda d: write_transformer_data(d, hours=260),
    "turbine-nox": lambda d: write_turbine_data(d, rows_per_year=60),
    "energy-anomaly": lambda d: write_gas_data(d, days=130),
}
# measurements sent for 1 and for 100 predictions (history comes along for two services)
MEASUREMENTS = {
    "transformer-temperature": (72, 171),
    "energy-anomaly": (8, 107),
}


@pytest.mark.parametrize("service", sorted(WRITERS))
def test_bodies_from_each_services_replay_code(tmp_path: Path, service: str) -> None:
    WRITERS[service](tmp_path)
    csv = bd.data_file(service, tmp_path)
    assert csv.is_file(), "DATA_FILES must name the file the service trains on"
    svc = load_service(service)(VigieSettings(asset_config=None))
    bodies = bd.build_bodies(svc, csv, (1, 100))
    for rows, expected in zip((1, 100), MEASUREMENTS.get(service, (1, 100)), strict=True):
        body = bodies[rows]
        assert body.rows == rows
        assert len(body.measurements) == expected
        assert re.fullmatch(ASSET_ID_PATTERN, body.asset_id)
        payload = json.loads(body.to_json())
        assert set(payload) == {"asset_id", "measurements"}
        assert len(bd.parsed(svc, body)) == expected  # the service's schema accepts every one
        label = body.label()
        assert label.startswith(f"{rows} row")
        assert ("meas." in label) == (expected != rows)


def test_a_file_too_short_for_the_body_says_so(tmp_path: Path) -> None:
    write_transformer_data(tmp_path, hours=100)  # 72 h of history: 29 forecasts at most
    svc = load_service("transformer-temperature")(VigieSettings(asset_config=None))
    csv = bd.data_file("transformer-temperature", tmp_path)
    assert bd.build_body(svc, csv, 29).rows == 29
    with pytest.raises(ValueError, match="no run of 100 valid rows"):
        bd.build_body(svc, csv, 100)


# ------------------------------------------------------------- model calls and baseline row


class Holder:
    """An artifact-like object: estimators inside a dict and a list (like the services')."""

    def __init__(self, members: dict[str, Any]) -> None:
        self.members = members


def _fitted() -> tuple[RandomForestClassifier, HistGradientBoostingRegressor]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    clf = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, x[:, 0] > 0)
    reg = HistGradientBoostingRegressor(max_iter=5).fit(x[:, :2], x[:, 1])
    return clf, reg


def test_estimators_are_found_inside_dicts_and_lists_once() -> None:
    clf, reg = _fitted()
    model = {"a": [clf, reg], "b": {"again": clf}}
    assert estimators_of(model) == [clf, reg]
    assert estimators_of(clf) == [clf]
    assert estimators_of({"x": np.zeros(3), "y": "text"}) == []
    assert (method_of(clf), method_of(reg)) == ("predict_proba", "predict")


def test_recorder_keeps_the_outermost_calls_and_builds_the_baseline_row() -> None:
    clf, reg = _fitted()
    recorder = bd.Recorder([clf, reg])
    x = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
    clf.predict(x)  # calls its own predict_proba: one call recorded, not two
    calls = recorder.take()
    assert [(c.estimator, c.method) for c in calls] == [(0, "predict")]
    assert np.array_equal(calls[0].x, x)
    assert np.array_equal(recorder.call(calls[0]), clf.predict(x))
    row, real = bd.baseline_row([clf, reg], calls)
    assert (row, real) == ([0.5, -1.0, 2.0, 0.0, 0.0], False)  # reg was not called: zeros
    reg.predict(np.array([[np.nan, 3.0]]))
    row, real = bd.baseline_row([clf, reg], [*calls, *recorder.take()])
    assert (row, real) == ([0.5, -1.0, 2.0, 0.0, 3.0], True)  # JSON has no NaN
    assert bd.median_ms(lambda: None, repeats=5) >= 0


def test_the_reference_model_drops_compiled_parts() -> None:
    @dataclasses.dataclass(frozen=True)
    class Loaded:  # vigie.models.store.LoadedModel's shape, with and without compiled parts
        model: Any
        compiled: dict[str, Any] = dataclasses.field(default_factory=dict)

    with_parts = Loaded("model", {"h1": object()})
    assert bd._joblib_only(with_parts) == Loaded("model", {})
    plain = Loaded("model")
    assert bd._joblib_only(plain) is plain


# ----------------------------------------------------------------------------------- report


def _cell(rows: int, c: int, rps: float, p99: float, errors: int = 0) -> dict[str, Any]:
    return {
        "rows": rows,
        "concurrency": c,
        "label": f"{rows} rows",
        "requests": int(rps * 5),
        "duration_s": 5.0,
        "rps": rps,
        "rows_per_s": rps * rows,
        "p50_ms": p99 / 3,
        "p90_ms": p99 / 2,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "errors": errors,
        "error_detail": {"status": errors},
        "cpu_pct": {"service": 90.0, "gateway": 10.0, "wrk": 3.0},
    }


def _services() -> list[dict[str, Any]]:
    fast = {
        "service": "turbine-nox",
        "skipped": None,
        "tree_ensemble": True,
        "cells": [_cell(1, 8, 3000.0, 4.0), _cell(100, 8, 1200.0, 20.0)],
        "soak": {**_cell(1, 64, 2500.0, 30.0), "duration_s": 60.0},
        "baseline": {**_cell(1, 8, 250.0, 60.0), "row_source": "service features"},
        "ratio_c8": 12.0,
        "in_process": {
            "predict_ms": {"1": 0.5, "1000": 8.0},
            "raw_model_ms": {"1": 0.2},
            "raw_sklearn_ms": {"1": 3.5},
        },
        "rss_mb": {"idle": [120.0, 121.0], "after": [150.0, 190.0]},
    }
    slow = {
        "service": "solar-flare",
        "skipped": None,
        "tree_ensemble": True,
        "cells": [_cell(1, 8, 100.0, 80.0), _cell(100, 8, 20.0, 500.0, errors=3)],
        "soak": None,
        "baseline": {**_cell(1, 8, 200.0, 50.0), "row_source": "zeros"},
        "ratio_c8": 0.5,
        "in_process": {},
        "rss_mb": {"idle": [250.0], "after": [260.0]},
    }
    skipped = {"service": "energy-anomaly", "skipped": "no model in models (make models)"}
    return [fast, slow, skipped]


def test_report_json_shape_and_checks(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    started = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    rep = report.build_report(
        {"started_at": "2026-11-22T01:02:03Z", "transport": "https"}, _services()
    )
    path = report.write_report(rep, report.report_path(tmp_path / "bench", started))
    assert path.name == "bench-20261122T010203Z.json"
    loaded = json.loads(path.read_text())
    assert set(loaded) == {"schema", "meta", "targets", "services", "checks"}
    assert loaded["schema"] == report.SCHEMA
    verdicts = {(c["service"], c["target"].split()[0]): c["ok"] for c in loaded["checks"]}
    assert verdicts == {
        ("turbine-nox", "1-row"): True,  # both 1-row checks: ratio 12x and p99 4 ms
        ("turbine-nox", "100-row"): True,  # 120,000 rows/s
        ("turbine-nox", "no"): True,  # soak: no errors for 60 s
        ("turbine-nox", "RSS"): True,
        ("solar-flare", "1-row"): False,
        ("solar-flare", "100-row"): False,
        ("solar-flare", "RSS"): False,
    }
    assert not any(c["service"] == "energy-anomaly" for c in loaded["checks"])


def test_table_has_every_service_and_verdict() -> None:
    rep = report.build_report({"started_at": "now", "transport": "https"}, _services())
    console = Console(record=True, width=220)
    console.print(report.render_table(rep))
    text = console.export_text()
    for needle in (
        "turbine-nox",
        "solar-flare",
        "energy-anomaly",
        "skipped: no model",
        "12.00x",
        "0.50x",
        "baseline (plain FastAPI)",
        "in-process, 1000 rows",
        "RSS/worker MB",
        "row of zeros",
        "(onnx), sklearn 3.50 ms",
        "MISS",
        "ok",
    ):
        assert needle in text, needle


# ------------------------------------------------------------------------------- processes


def test_rss_and_cpu_of_this_process() -> None:
    pid = os.getpid()
    statm = Path("/proc/self/statm").read_text().split()
    resident = int(statm[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert fleet.rss_mb(pid) == pytest.approx(resident, rel=0.2)
    pss = fleet.pss_mb(pid)
    assert pss is None or 0 < pss <= fleet.rss_mb(pid) * 1.05
    before = fleet.cpu_seconds([pid])
    busy = fleet.machine_busy_seconds()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert fleet.cpu_seconds([pid, 999_999_999]) >= before + 0.1  # a gone pid counts 0
    assert fleet.machine_busy_seconds() >= busy + 0.1  # this process's work, at least


def test_process_tree_and_gunicorn_pieces() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        table = fleet.proc_table()
        assert table[child.pid][0] == os.getpid()
        assert child.pid in fleet.descendants(table, os.getpid())
    finally:
        child.kill()
        child.wait()
    gunicorn = "python -m gunicorn -c python:vigie.serve.gunicorn_conf --name vigie-{} app"
    fake = {
        10: (1, "honcho start"),
        11: (10, gunicorn.format("turbine-nox")),
        12: (11, gunicorn.format("turbine-nox")),
        13: (11, gunicorn.format("turbine-nox")),
        14: (10, gunicorn.format("turbine-nox-v2")),  # another name, not a worker of 11
    }
    pieces = fleet.gunicorn_of(fake, [11, 12, 13, 14], "turbine-nox")
    assert pieces is not None and (pieces.master, pieces.workers) == (11, [12, 13])
    assert fleet.gunicorn_of(fake, [11, 12], "auth") is None


def test_command_line_options() -> None:
    opts = fleet.parse_args([])
    assert (opts.duration, opts.concurrency, opts.rows, opts.https) == (
        5.0,
        [1, 8, 64],
        [1, 100],
        True,
    )
    assert not opts.access_log and opts.baseline and opts.soak == 60
    opts = fleet.parse_args(
        [
            "--http",
            "--services",
            "turbine-nox",
            "--concurrency",
            "2,4",
            "--fleet-env",
            "OMP_NUM_THREADS=1",
            "--no-access-log",
        ]
    )
    assert (opts.https, opts.services, opts.concurrency) == (False, ["turbine-nox"], [2, 4])
    assert opts.fleet_env == {"OMP_NUM_THREADS": "1"} and not opts.access_log
    with pytest.raises(SystemExit):
        fleet.parse_args(["--services", "not-a-service"])


# -------------------------------------------------------------- real wrk, real baseline app


@pytest.fixture
def wrk_installed() -> None:
    if shutil.which("wrk") is None:
        if _under_ci():
            pytest.fail(
                f"{wrk.WRK_MISSING} (CI is set: the bench's wrk test must run)", pytrace=False
            )
        pytest.skip(wrk.WRK_MISSING)


@pytest.mark.integration
@pytest.mark.usefixtures("wrk_installed")
def test_wrk_sends_the_bench_request(tmp_path: Path) -> None:
    """What post.lua sends: POST, the body, JSON and bearer headers, no Idempotency-Key."""
    body = tmp_path / "body.json"
    body.write_text('{"asset_id": "GT1", "measurements": []}')
    with HttpReceiver() as rx:
        r = wrk.run_wrk(rx.url + "/v1/predict", body, connections=1, duration_s=1, token="tok-123")
        seen = rx.requests
    assert r.requests > 0 and seen
    first = seen[0]
    assert (first.method, first.path, first.body) == ("POST", "/v1/predict", body.read_bytes())
    assert first.headers["authorization"] == "Bearer tok-123"
    assert first.headers["content-type"] == "application/json"
    assert "idempotency-key" not in first.headers


@pytest.mark.integration
@pytest.mark.usefixtures("wrk_installed")
def test_wrk_against_the_baseline_app(tmp_path: Path) -> None:
    clf, reg = _fitted()
    artifact = tmp_path / "model.joblib"
    joblib.dump({"classifier": clf, "regressor": reg}, artifact)
    good, bad = tmp_path / "row.json", tmp_path / "bad.json"
    good.write_text(json.dumps([0.1, 0.2, 0.3, 0.4, 0.5]))  # 3 features + 2 features
    bad.write_text('{"not": "a list"}')
    with BaselineServer(artifact, free_port(), tmp_path / "baseline.log") as server:
        ok = wrk.run_wrk(server.url + "/predict", good, connections=2, duration_s=1)
        refused = wrk.run_wrk(server.url + "/predict", bad, connections=2, duration_s=1)
    assert ok.requests > 10, ok
    assert ok.error_total == 0, ok
    assert 0 < ok.p50_ms <= ok.p99_ms <= ok.max_ms
    assert ok.wrk_cpu_s is not None and ok.wrk_cpu_s >= 0
    assert refused.requests > 0 and refused.errors["status"] == refused.requests  # 422s
