"""The whole fleet, started by the very launcher users run (`vigie fleet run`), on free ports.

Models are trained beforehand by the real ``vigie train`` on synthetic data, so the launcher finds
them all and trains nothing. Everything the fleet writes (keys, certificate, databases, Redis AOF,
nginx prefix, logs) lives under one temporary root.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port, wait_until
from tests.support.serving import train_synthetic
from vigie.ops.registry import load

PIECES = list(load().names)


def train_fleet_models(root: Path, writers: dict[str, Callable[[Path], object]]) -> Path:
    """One models dir (and one data dir, ``root/data``) for every service in ``writers``."""
    models = root / "models"
    for service, write in writers.items():
        assert train_synthetic(root, service, write) == models
    return models


@dataclass
class Fleet:
    """A running `vigie fleet run` and what a test needs to talk to it."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int]
    http_port: int
    https_port: int
    redis_port: int
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def log_path(self) -> Path:
        return self.root / "fleet.log"

    @property
    def cert(self) -> Path:
        return self.var / "tls" / "gateway.crt"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kw: Any) -> httpx.Client:
        """An HTTPS client of the gateway that trusts only the fleet's dev certificate."""
        tls = ssl.create_default_context(cafile=str(self.cert))
        return httpx.Client(base_url=self.https_url, verify=tls, timeout=30, **kw)

    def dev_credentials(self) -> dict[str, str]:
        return dict(json.loads((self.var / "keys" / "replay-client.json").read_text()))

    def token(self, scope: str) -> str:
        """A token from ``POST /auth/token`` through the gateway, as an integration gets one."""
        creds = self.dev_credentials()
        with self.client() as c:
            r = c.post("/auth/token", data={"grant_type": "client_credentials", "scope": scope,
                                            **creds})  # fmt: skip
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def start(self, ready_timeout: float = 240) -> Fleet:
        with self.log_path.open("ab") as log:
            # Its own session, like a terminal's foreground job: stop() sends Ctrl-C to the group.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vigie", "fleet", "run"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the fleet exited early:\n{self.log()[-5000:]}")
            return "Vigie fleet ready" in self.log()

        wait_until(ready, timeout=ready_timeout, interval=0.5, what="the fleet's ready banner")
        return self

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it (SIGINT to the whole process group); the exit code."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Last resort after a failed test: nothing may outlive the fleet. Ctrl-C first (honcho
        stops what it started); then SIGKILL whatever still carries this fleet's var dir."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        for pid in [self.proc.pid, *self.processes()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def processes(self) -> list[int]:
        """Every live process started for this fleet, whatever its session (honcho gives each
        piece its own): the ones whose environment names this fleet's var dir."""
        marker = f"VIGIE_VAR_DIR={self.var}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def listening(self) -> list[int]:
        """The fleet's ports that still accept connections."""
        open_ports = []
        for port in [*self.ports.values(), self.http_port, self.https_port, self.redis_port]:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    open_ports.append(port)
        return open_ports


def fleet_env(root: Path, models: Path, **settings: str) -> Fleet:
    """A fleet (not started) whose every piece listens on a free port of its own."""
    ports = {piece: free_port() for piece in PIECES}
    http_port, https_port, redis_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "VIGIE_VAR_DIR": str(root / "var"),
        "VIGIE_MODELS_DIR": str(models),
        "VIGIE_DATA_DIR": str(root / "data"),
        "VIGIE_FLEET_PORTS": json.dumps(ports),
        "VIGIE_FLEET_HTTP_PORT": str(http_port),
        "VIGIE_FLEET_HTTPS_PORT": str(https_port),
        "VIGIE_FLEET_REDIS_PORT": str(redis_port),
        "VIGIE_FLEET_READY_TIMEOUT_S": "200",
        **settings,
    }
    for name in ("VIGIE_KEYS_DIR", "VIGIE_REDIS_URL", "VIGIE_DATABASE_URL", "VIGIE_ASSET_CONFIG",
                 "PROMETHEUS_MULTIPROC_DIR"):  # fmt: skip
        if name not in settings:
            env.pop(name, None)
    return Fleet(root, env, ports, http_port, https_port, redis_port)
