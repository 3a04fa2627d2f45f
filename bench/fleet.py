"""`make bench`: the fleet's throughput and latency through the gateway, against a plain FastAPI
baseline on the same model, in one sitting and one table.

    python -m bench.fleet [--services a,b] [--duration 5] [--concurrency 1,8,64] [--soak 0]
                          [--https | --http] [--access-log | --no-access-log] [--no-baseline]

What it does, bounded in time (about services x (rows x concurrencies + 2) x duration):

1. builds each service's request bodies from its real training CSV with the service's own
   replay code (bench/bodies.py); a service whose model or data file is missing is skipped,
   with the reason;
2. starts the fleet with the launcher users run (`vigie fleet run`, its own session, Ctrl-C to
   stop) on free ports, in a temporary var dir, with the models of the normal models dir and the
   gateway's rate limits raised so they never throttle the bench;
3. per service, in the harness process: ``predict`` of the service (the full service path, 1 and
   1,000 rows; median of repeats) and the raw scikit-learn calls it makes, recorded from it;
4. per service, through the gateway (HTTPS by default) with a real token from ``/auth/token``,
   level events going to Redis (alerting consumes them): wrk (bench/wrk.py) at each
   concurrency for each body size; a soak at the highest concurrency (60 s); the RSS of each
   gunicorn worker before and after; the CPU used by the service, nginx, Redis, alerting, auth
   and wrk over each cell;
5. the baseline (bench/baseline.py: gunicorn, 2 uvicorn workers, ``predict_proba`` on one row,
   no auth, no Redis) on the same artifact at concurrency 8, and the ratio;
6. prints one table and writes the JSON report to ``var/bench/bench-<UTC time>.json``.

Loopback only; the machine's other load shows in the numbers (its load average is recorded):
compare ratios within one run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console

from bench import bodies as bd
from bench.baseline import BaselineServer
from bench.report import RATIO_CONCURRENCY, build_report, render_table, report_path, write_report
from bench.wrk import default_threads, run_wrk, wrk_binary, wrk_version
from vigie.models.store import ModelStore
from vigie.ops.fleet import PREDICTION_PIECES
from vigie.settings import REPO_ROOT, VigieSettings
from vigie_services import load_service

UNLIMITED = "1000000"  # gateway rate and burst: far above anything loopback reaches
IN_PROCESS_ROWS = (1, 1000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- processes


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd.strip())
    return table


def descendants(table: dict[int, tuple[int, str]], root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        found += kids
        frontier += kids
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def pss_mb(pid: int) -> float | None:
    """Proportional set size in MiB (shared pages split between their users), if readable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle so far (``/proc/stat``), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


@dataclass(frozen=True)
class Gunicorn:
    master: int
    workers: list[int]

    @property
    def pids(self) -> list[int]:
        return [self.master, *self.workers]


def gunicorn_of(table: dict[int, tuple[int, str]], pids: list[int], piece: str) -> Gunicorn | None:
    """The gunicorn master of ``piece`` (``--name vigie-<piece>``) among ``pids``, and its
    workers (its children)."""
    marker = f"--name vigie-{piece} "
    named = [p for p in pids if marker in table[p][1] + " " and "gunicorn" in table[p][1]]
    masters = [p for p in named if table[p][0] not in named]
    if not masters:
        return None
    master = masters[0]
    return Gunicorn(master, [p for p in named if table[p][0] == master])


# ---------------------------------------------------------------------------------- fleet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchFleet:
    """`vigie fleet run` on free ports under ``root``, as a user starts it."""

    def __init__(
        self,
        root: Path,
        services: list[str],
        models_dir: Path,
        access_log: bool,
        extra_env: dict[str, str] | None = None,
    ):
        self.root = root
        self.services = services
        self.ports = {p: free_port() for p in ("auth", "alerting", *services)}
        self.http_port, self.https_port, self.redis_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "VIGIE_VAR_DIR": str(root / "var"),
            "VIGIE_MODELS_DIR": str(models_dir.resolve()),
            "VIGIE_FLEET_PORTS": json.dumps(self.ports),
            "VIGIE_FLEET_SERVICES": json.dumps(services),
            "VIGIE_FLEET_HTTP_PORT": str(self.http_port),
            "VIGIE_FLEET_HTTPS_PORT": str(self.https_port),
            "VIGIE_FLEET_REDIS_PORT": str(self.redis_port),
            "VIGIE_FLEET_CLIENT_RATE": UNLIMITED,
            "VIGIE_FLEET_CLIENT_BURST": UNLIMITED,
            "VIGIE_FLEET_IP_RATE": UNLIMITED,
            "VIGIE_FLEET_IP_BURST": UNLIMITED,
            "VIGIE_ACCESS_LOG": "true" if access_log else "false",
            **(extra_env or {}),
        }
        for name in (
            "VIGIE_KEYS_DIR",
            "VIGIE_REDIS_URL",
            "VIGIE_DATABASE_URL",
            "PROMETHEUS_MULTIPROC_DIR",
            "VIGIE_FLEET_UPSTREAM_HOSTS",
        ):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "fleet.log"

    @property
    def cert(self) -> Path:
        return self.root / "var" / "tls" / "gateway.crt"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 300) -> BenchFleet:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vigie", "fleet", "run"],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if "Vigie fleet ready" in text:
                return self
            if self.proc.poll() is not None or "not ready after" in text:
                break
            time.sleep(0.5)
        tail = self.log()[-4000:]
        self.stop()
        raise RuntimeError(f"the fleet did not start (log {self.log_path}):\n{tail}")

    def stop(self) -> None:
        """Ctrl-C to the fleet's process group, as a terminal sends it; SIGKILL if it lingers."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def url(self, https: bool, path: str) -> str:
        if https:
            return f"https://127.0.0.1:{self.https_port}{path}"
        return f"http://127.0.0.1:{self.http_port}{path}"

    def client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(self.cert)), timeout=60)

    def token(self, scope: str) -> str:
        """A token from ``POST /auth/token`` through the gateway, with the dev client that the
        launcher registered, as an integration gets one."""
        creds = json.loads((self.root / "var" / "keys" / "replay-client.json").read_text())
        with self.client() as c:
            r = c.post(
                self.url(True, "/auth/token"),
                data={"grant_type": "client_credentials", "scope": scope, **creds},
            )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=5)

    def groups(self, service: str) -> dict[str, list[int]]:
        """Process groups whose CPU each cell records: the service, nginx, Redis, alerting, auth."""
        assert self.proc is not None
        table = proc_table()
        pids = descendants(table, self.proc.pid)
        out: dict[str, list[int]] = {}
        for group, piece in (("service", service), ("alerting", "alerting"), ("auth", "auth")):
            g = gunicorn_of(table, pids, piece)
            out[group] = g.pids if g else []
        out["gateway"] = [p for p in pids if table[p][1].startswith("nginx")]
        out["redis"] = [p for p in pids if "redis-server" in table[p][1]]
        # `vigie fleet run` and honcho, which relays every log line of every piece.
        out["launcher"] = [self.proc.pid, *(p for p in pids if "honcho" in table[p][1])]
        return out

    def workers(self, service: str) -> list[int]:
        assert self.proc is not None
        table = proc_table()
        g = gunicorn_of(table, descendants(table, self.proc.pid), service)
        return g.workers if g else []


def level_events_added(client: redis.Redis) -> int:
    """Entries ever added to the level stream (not trimmed away, unlike XLEN)."""
    try:
        info: Any = client.xinfo_stream("vigie:levels")
    except redis.ResponseError:
        return 0  # no stream yet
    value = info.get("entries-added", info.get(b"entries-added"))
    return int(value) if value is not None else int(client.xlen("vigie:levels"))


# --------------------------------------------------------------------------------- cells


@dataclass
class Run:
    """What every cell needs."""

    opts: argparse.Namespace
    work: Path
    console: Console
    level_events: Callable[[], int] | None = None


def run_cell(
    run: Run,
    url: str,
    body: Path,
    rows: int,
    label: str,
    concurrency: int,
    duration: float,
    token: str | None,
    groups: dict[str, list[int]],
) -> dict[str, Any]:
    before = {g: cpu_seconds(p) for g, p in groups.items()}
    busy = machine_busy_seconds()
    events = run.level_events() if run.level_events else None
    t0 = time.monotonic()
    res = run_wrk(
        url,
        body,
        connections=concurrency,
        duration_s=duration,
        token=token,
        threads=run.opts.wrk_threads or default_threads(concurrency),
    )
    wall = time.monotonic() - t0
    cpu: dict[str, float | None] = {
        g: round(100 * (cpu_seconds(p) - before[g]) / wall, 1) if p else None
        for g, p in groups.items()
    }
    cpu["wrk"] = None if res.wrk_cpu_pct is None else round(res.wrk_cpu_pct, 1)
    # Every core's busy time, and what of it was neither the pieces nor wrk: the machine's
    # other work during the cell (100 = one core).
    machine = round(100 * (machine_busy_seconds() - busy) / wall, 1)
    cpu["other"] = round(machine - sum(v for v in cpu.values() if v), 1)
    cpu["machine"] = machine
    cell = {
        "rows": rows,
        "concurrency": concurrency,
        "label": label,
        "requests": res.requests,
        "duration_s": round(res.duration_s, 3),
        "rps": round(res.rps, 1),
        "rows_per_s": round(res.rps * rows, 1),
        "p50_ms": round(res.p50_ms, 3),
        "p90_ms": round(res.p90_ms, 3),
        "p99_ms": round(res.p99_ms, 3),
        "max_ms": round(res.max_ms, 3),
        "errors": res.error_total,
        "error_detail": res.errors,
        "wrk_threads": res.threads,
        "cpu_pct": cpu,
    }
    if events is not None and run.level_events:
        cell["level_events"] = run.level_events() - events
    run.console.print(
        f"  {label:<24} c{concurrency:<3} {res.rps:>9,.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
        f"p99 {res.p99_ms:7.2f} ms  errors {res.error_total}",
        highlight=False,
    )
    return cell


def probe(
    client: httpx.Client, url: str, payload: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    r = client.post(url, content=payload, headers={"Content-Type": "application/json", **headers})
    out: dict[str, Any] = {"status": r.status_code}
    if r.status_code == 200:
        data = r.json()
        if isinstance(data, dict) and "predictions" in data:
            out["predictions"] = len(data["predictions"])
    else:
        out["answer"] = r.text[:500]
    return out


def bench_service(run: Run, fleet: BenchFleet, s: dict[str, Any], ctx: dict[str, Any]) -> None:
    """The gateway cells, soak, RSS and baseline of one service; results into ``s``."""
    opts, name = run.opts, s["service"]
    url = fleet.url(opts.https, f"/{name}/v1/predict")
    token = fleet.token(f"predict:{name}")
    files = {
        rows: body.write(run.work / "bodies" / f"{name}-{rows}.json")
        for rows, body in ctx["bodies"].items()
    }
    with fleet.client() as client:
        s["probe"] = {
            str(rows): probe(
                client, url, ctx["bodies"][rows].to_json(), {"Authorization": f"Bearer {token}"}
            )
            for rows in files
        }
    bad = {
        r: p for r, p in s["probe"].items() if p["status"] != 200 or p.get("predictions") != int(r)
    }
    if bad:
        s["skipped"] = f"the service did not answer the bench's bodies as expected: {bad}"
        return
    s["rss_mb"] = {"idle": [round(rss_mb(p), 1) for p in fleet.workers(name)]}
    groups = fleet.groups(name)
    for rows, path in files.items():
        if opts.warmup > 0:
            run_wrk(url, path, connections=8, duration_s=opts.warmup, token=token)
        for c in opts.concurrency:
            label = ctx["bodies"][rows].label()
            s["cells"].append(
                run_cell(run, url, path, rows, label, c, opts.duration, token, groups)
            )
    if opts.soak > 0:
        rows = min(files)
        s["soak"] = run_cell(
            run,
            url,
            files[rows],
            rows,
            ctx["bodies"][rows].label(),
            max(opts.concurrency),
            opts.soak,
            token,
            groups,
        )
    workers = fleet.workers(name)
    s["rss_mb"]["after"] = [round(rss_mb(p), 1) for p in workers]
    s["rss_mb"]["pss_after"] = [None if (v := pss_mb(p)) is None else round(v, 1) for p in workers]
    if opts.baseline:
        s["baseline"] = bench_baseline(run, s, ctx)
        vigie = next(
            (c for c in s["cells"] if c["rows"] == 1 and c["concurrency"] == RATIO_CONCURRENCY),
            None,
        )
        if vigie and s["baseline"] and s["baseline"]["rps"] > 0:
            s["ratio_c8"] = round(vigie["rps"] / s["baseline"]["rps"], 3)


def bench_baseline(run: Run, s: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    name = s["service"]
    body = run.work / "bodies" / f"{name}-baseline.json"
    ip: bd.InProcess = ctx["in_process"]
    body.write_text(json.dumps(ip.baseline_row))
    server = BaselineServer(ip.artifact, free_port(), run.work / f"baseline-{name}.log")
    with server:
        with httpx.Client(timeout=30) as client:
            answer = probe(client, server.url + "/predict", body.read_bytes(), {})
        if answer["status"] != 200:
            raise RuntimeError(f"{name}: the baseline answered {answer}")
        assert server.proc is not None
        table = proc_table()
        groups = {"service": [server.proc.pid, *descendants(table, server.proc.pid)]}
        if run.opts.warmup > 0:
            run_wrk(server.url + "/predict", body, connections=8, duration_s=run.opts.warmup)
        saved, run.level_events = run.level_events, None
        try:
            cell = run_cell(
                run,
                server.url + "/predict",
                body,
                1,
                "baseline, 1 row",
                RATIO_CONCURRENCY,
                run.opts.duration,
                None,
                groups,
            )
        finally:
            run.level_events = saved
    cell["row_source"] = "service features" if ip.row_is_real else "zeros"
    cell["estimators"] = s["estimators"]
    return cell


# ---------------------------------------------------------------------------------- main


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    p.add_argument(
        "--services",
        default=",".join(PREDICTION_PIECES),
        help="comma-separated prediction services (default: all five)",
    )
    p.add_argument("--duration", type=float, default=5.0, help="seconds per cell (default 5)")
    p.add_argument(
        "--concurrency",
        type=_csv_ints,
        default=[1, 8, 64],
        help="connections, comma-separated (default 1,8,64)",
    )
    p.add_argument(
        "--rows",
        type=_csv_ints,
        default=[1, 100],
        help="predictions per request, comma-separated (default 1,100)",
    )
    p.add_argument(
        "--soak",
        type=float,
        default=60.0,
        help="then 1-row requests at the highest concurrency this long (s; default 60, the "
        "target's length; 0 skips it)",
    )
    tls = p.add_mutually_exclusive_group()
    tls.add_argument(
        "--https",
        dest="https",
        action="store_true",
        default=True,
        help="through the gateway's HTTPS port, as clients do (default)",
    )
    tls.add_argument(
        "--http", dest="https", action="store_false", help="through the gateway's plain HTTP port"
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also the services' own access line per request (VIGIE_ACCESS_LOG; default off, "
        "as `vigie fleet run` runs them: the gateway writes one line per request)",
    )
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the plain FastAPI baseline and print the ratio (default on)",
    )
    p.add_argument(
        "--fleet-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the fleet's processes, e.g. OMP_NUM_THREADS=1 or "
        "VIGIE_WORKERS=4 (repeatable; recorded in the report)",
    )
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per body")
    p.add_argument("--repeats", type=int, default=30, help="in-process predict repeats")
    p.add_argument("--wrk-threads", type=int, default=None, help="default: min(c, 2, cores)")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "var" / "bench")
    p.add_argument("--keep", action="store_true", help="keep the temporary fleet dir (logs, dbs)")
    opts = p.parse_args(argv)
    opts.services = [s.strip() for s in opts.services.split(",") if s.strip()]
    unknown = sorted(set(opts.services) - set(PREDICTION_PIECES))
    if unknown:
        p.error(f"unknown services {unknown}; known: {', '.join(PREDICTION_PIECES)}")
    try:
        opts.fleet_env = dict(item.split("=", 1) for item in opts.fleet_env)
    except ValueError:
        p.error("--fleet-env takes NAME=VALUE")
    if opts.duration < 1 or (opts.soak and opts.soak < 1):
        p.error("--duration and --soak are whole seconds, at least 1")
    return opts


def _git(*args: str) -> str:
    git = shutil.which("git") or "git"
    done = subprocess.run([git, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip()


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return _git("rev-parse", "HEAD") + ("+dirty" if _git("status", "--porcelain") else "")
    return None


def prepare(
    opts: argparse.Namespace, settings: VigieSettings, console: Console
) -> list[dict[str, Any]]:
    """Per service: its bodies, artifact and estimators, or the reason it is skipped."""
    store = ModelStore(settings.models_dir)
    out = []
    for name in opts.services:
        s: dict[str, Any] = {
            "service": name,
            "skipped": None,
            "cells": [],
            "soak": None,
            "baseline": None,
            "ratio_c8": None,
            "_ctx": {},
        }
        out.append(s)
        if not store.has_current(name):
            s["skipped"] = f"no model in {settings.models_dir} (make models)"
            continue
        csv = bd.data_file(name, settings.data_dir)
        if not csv.is_file():
            s["skipped"] = f"no data file {csv}"
            continue
        console.print(f"[bold]{name}[/bold]: request bodies from {csv}")
        service = load_service(name)(settings)
        try:
            sizes = tuple(sorted({*opts.rows, *IN_PROCESS_ROWS}))
            s["_ctx"]["bodies_all"] = bd.build_bodies(service, csv, sizes)
        except ValueError as exc:
            s["skipped"] = str(exc)
            continue
        s["_ctx"]["bodies"] = {r: s["_ctx"]["bodies_all"][r] for r in opts.rows}
        s["bodies"] = {
            str(r): {
                "rows": b.rows,
                "measurements": len(b.measurements),
                "bytes": len(b.to_json()),
                "asset_id": b.asset_id,
            }
            for r, b in s["_ctx"]["bodies"].items()
        }
        s["model_version"] = store.current_version(name)
    return out


@contextlib.contextmanager
def _step(console: Console, s: dict[str, Any], what: str) -> Iterator[None]:
    """One step of one service; a failure skips the service (with the reason), not the bench."""
    console.print(f"[bold]{s['service']}[/bold]: {what}")
    try:
        yield
    except Exception as exc:
        console.print_exception(max_frames=5)
        s["skipped"] = f"{what} failed: {type(exc).__name__}: {exc}"[:500]


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vigie-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # Wide enough for the table when the output goes to a file or a pipe (make, CI logs).
    console = Console() if sys.stdout.isatty() else Console(width=170)
    wrk_binary()  # fails early, with the install line, when wrk is missing
    started = datetime.now(UTC)
    settings = VigieSettings()
    services = prepare(opts, settings, console)
    runnable = [s for s in services if not s["skipped"]]
    meta: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
        "host": {
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "wrk": wrk_version(),
        "transport": "https" if opts.https else "http",
        "access_log": "on" if opts.access_log else "off",
        "duration_s": opts.duration,
        "concurrency": opts.concurrency,
        "rows": opts.rows,
        "soak_s": opts.soak,
        "warmup_s": opts.warmup,
        "gunicorn_workers_per_service": int(
            opts.fleet_env.get("VIGIE_WORKERS", os.environ.get("VIGIE_WORKERS", "2"))
        ),
        "fleet_env": opts.fleet_env,
        "openmp_threads_harness": bd.openmp_threads(),
        "models_dir": str(settings.models_dir),
        "data_dir": str(settings.data_dir),
        "caption": (
            "rows = predictions (transformer-temperature: 1 row = 72 hourly measurements, "
            "energy-anomaly: 7 days of history + the day). cpu% over each cell: the service's "
            "gunicorn processes, nginx, wrk, and the machine's other work (100 = one core busy). "
            "Loopback on one machine: "
            "numbers are noisy, ratios within one run count."
        ),
    }
    with workdir(opts.keep) as work:
        run = Run(opts, work, console)
        names = [s["service"] for s in runnable]
        fleet = BenchFleet(work, names, settings.models_dir, opts.access_log, opts.fleet_env)
        try:
            if runnable:
                console.print(f"starting the fleet ({', '.join(fleet.services)}) in {work}")
                fleet.start()
                state = fleet.redis()
                run.level_events = lambda: level_events_added(state)
                local = VigieSettings(
                    models_dir=settings.models_dir,
                    var_dir=work / "harness",
                    redis_url=f"redis://127.0.0.1:{fleet.redis_port}/0",
                )
                for s in runnable:
                    with _step(console, s, "in-process predict"):
                        samples = {r: s["_ctx"]["bodies_all"][r] for r in IN_PROCESS_ROWS}
                        ip = bd.in_process(s["service"], local, state, samples, opts.repeats)
                        s["_ctx"]["in_process"] = ip
                        s["in_process"] = ip.result
                        s["estimators"] = [type(e).__name__ for e in ip.estimators]
                        s["tree_ensemble"] = bool(ip.estimators) and all(
                            type(e).__module__.startswith("sklearn.ensemble") for e in ip.estimators
                        )
                for s in runnable:
                    if not s["skipped"]:
                        with _step(console, s, f"through the gateway ({meta['transport']})"):
                            bench_service(run, fleet, s, s["_ctx"])
        finally:
            meta["loadavg_end"] = os.getloadavg()
            fleet.stop()
            if opts.keep:
                console.print(f"kept {work} (fleet.log, baseline logs, databases)")
    for s in services:
        s.pop("_ctx", None)
    meta["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = build_report(meta, services)
    path = write_report(report, report_path(opts.out_dir, started))
    console.print(render_table(report))
    console.print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
