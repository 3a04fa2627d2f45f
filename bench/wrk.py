"""wrk, the load generator of the fleet bench: one bounded run per table cell.

wrk (C, epoll, keep-alive connections; LuaJIT for the script) sends ``bench/lua/post.lua``'s
fixed POST body with the bench's headers and prints, from the script's ``done()`` hook, one line
``VIGIE_BENCH_JSON {...}`` with the request count, the error counts (including answers with a
status >= 400) and latency percentiles; :func:`parse_output` reads it. The CPU time wrk itself
used is measured too (``wait4``), so a run where the load generator was the bottleneck shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "post.lua"
MARKER = "VIGIE_BENCH_JSON "
WRK_MISSING = "wrk is not installed (Debian: apt-get install -y wrk)"


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result; the message says which."""


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError(WRK_MISSING)
    return path


def wrk_version() -> str:
    argv = [wrk_binary(), "--version"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else ""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    threads: int
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, status, timeout
    wrk_cpu_s: float | None = None  # user + system CPU seconds wrk used

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def wrk_cpu_pct(self) -> float | None:
        """wrk's CPU use over the run (100 = one core busy all the time)."""
        if self.wrk_cpu_s is None or self.duration_s <= 0:
            return None
        return 100.0 * self.wrk_cpu_s / self.duration_s

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            rps=round(self.rps, 1),
            error_total=self.error_total,
            wrk_cpu_pct=None if self.wrk_cpu_pct is None else round(self.wrk_cpu_pct, 1),
        )
        return out


def parse_output(text: str, *, connections: int, threads: int) -> WrkResult:
    """The result line of ``post.lua``'s ``done()`` in wrk's output; ``WrkError`` if absent."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"no {MARKER.strip()} line in wrk's output:\n{text[-2000:]}")
    lat = data["latency_us"]
    errors = {k: int(v) for k, v in data["errors"].items()}
    return WrkResult(
        connections=connections,
        threads=threads,
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        mean_ms=lat["mean"] / 1000,
        errors=errors,
    )


def default_threads(connections: int) -> int:
    """wrk threads: one per core up to 2 (the services need the rest), never more than
    connections."""
    return max(1, min(connections, 2, os.cpu_count() or 1))


def run_wrk(
    url: str,
    body: Path,
    *,
    connections: int,
    duration_s: float,
    token: str | None = None,
    threads: int | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """POST ``body`` to ``url`` for ``duration_s`` seconds over ``connections`` keep-alive
    connections. A request slower than ``timeout_s`` counts as a timeout error."""
    threads = threads or default_threads(connections)
    argv = [
        wrk_binary(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration_s))}s",
        "--timeout",
        f"{max(1, round(timeout_s))}s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "VIGIE_BENCH_BODY": str(body), "VIGIE_BENCH_TOKEN": token or ""}
    proc = subprocess.Popen(  # noqa: S603 (our own argv)
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # wrk stops by itself after its duration; this only guards against a wedged run.
    guard = threading.Timer(duration_s + timeout_s + 30, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        guard.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}:\n{out[-2000:]}")
    result = parse_output(out, connections=connections, threads=threads)
    return WrkResult(**{**asdict(result), "wrk_cpu_s": usage.ru_utime + usage.ru_stime})
