"""Real servers on loopback for tests: redis-server and Vigie services under gunicorn."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import redis
import uvicorn

from vigie.ops.tls import ensure_dev_certificate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def uvicorn_thread(
    app: Any,
    tls_dir: Path | None = None,
    lifespan: Literal["auto", "on", "off"] = "on",
    log_level: str = "warning",
) -> Iterator[str]:
    """An ASGI ``app`` under uvicorn in a thread of this process, on a free loopback port
    (HTTPS with the dev certificate of ``tls_dir`` when given); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if tls_dir is not None:
        files = ensure_dev_certificate(tls_dir)
        tls = {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
    config = uvicorn.Config(app, log_level=log_level, lifespan=lifespan, **tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if tls_dir else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class RedisServer:
    """A real redis-server; AOF with fsync always so a restart keeps every stream entry."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail(
                "redis-server is not installed (make system-deps / apt-get install redis-server)"
            )
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--protected-mode", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def pong() -> bool:
            try:
                return bool(self.client().ping())
            except redis.RedisError:
                return False

        wait_until(pong, what=f"redis on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class ServiceProcess:
    """``vigie serve NAME`` (gunicorn, uvicorn workers) as a subprocess on a free port; with
    ``app_spec``, gunicorn serving that app factory instead (a service no registry lists)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        workers: int = 2,
        app_spec: str | None = None,
    ) -> None:
        self.name = name
        self.app_spec = app_spec
        self.workers = workers
        self.port = free_port()
        self.env = {**os.environ, **env, "VIGIE_WORKERS": str(workers)}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/readyz", expect: int = 200) -> ServiceProcess:
        command = [sys.executable, "-m", "vigie", "serve", self.name, "--port", str(self.port)]
        if self.app_spec is not None:
            # what `vigie serve` does: the workers share their metrics through files
            metrics_dir = self.log_path.parent / f"prometheus-{self.name}-{self.port}"
            metrics_dir.mkdir(parents=True, exist_ok=True)
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            command = [
                sys.executable, "-m", "gunicorn", "-c", "python:vigie.serve.gunicorn_conf",
                "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
                "--name", f"vigie-{self.name}", self.app_spec,
            ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def answered() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                return httpx.get(self.url + ready_path, timeout=1).status_code == expect
            except httpx.HTTPError:
                return False

        wait_until(answered, timeout=60, what=f"{self.name} {ready_path} -> {expect}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
