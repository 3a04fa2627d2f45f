"""`vigie fleet run`: the whole fleet on one machine, in one command.

Preparation (idempotent, each step skipped when already done): dev signing keys, the gateway's dev
certificate, every missing model trained from the data directory, a dev OAuth2 client for
`vigie replay`, the nginx config (checked with ``nginx -t``). Then honcho runs the ``Procfile``
(Redis, every piece of the registry under gunicorn, nginx; :mod:`vigie.ops.procfile`) with the
ports of :class:`~vigie.ops.fleet.FleetSettings`; once every piece answers through the gateway the
URLs and a token are printed. Ctrl-C (or SIGTERM) stops every process: honcho owns that part.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.contract.errors import ConfigError
from vigie.models.store import ModelStore
from vigie.ops.fleet import FleetSettings
from vigie.ops.gateway import GatewayFiles, check_config, nginx_binary, write_config
from vigie.ops.procfile import PROCFILE, port_variable
from vigie.ops.tls import TlsFiles, ensure_dev_certificate
from vigie.settings import REPO_ROOT, VigieSettings

DEV_CLIENT = "vigie-dev"
DEV_CLIENT_FILE = "replay-client.json"  # read by `vigie replay` when no credentials are given


@dataclass(frozen=True)
class Prepared:
    """What `run` needs: the processes' environment and where things are."""

    env: dict[str, str]
    tls: TlsFiles
    gateway: GatewayFiles
    var_dir: Path


def fleet_scopes(fleet: FleetSettings) -> list[str]:
    """Every scope the fleet's pieces check: what the dev client and the printed token get."""
    return list(fleet.registry.scopes(fleet.pieces))


def _require_redis() -> None:
    if shutil.which("redis-server") is None:
        raise ConfigError(
            "redis-server is not installed: run `make setup` as root, or apt-get install "
            "redis-server"
        )


def _train_missing(settings: VigieSettings, fleet: FleetSettings, console: Console) -> None:
    store = ModelStore(settings.models_dir)
    for service in fleet.services:
        if store.has_current(service):
            continue
        console.print(f"[bold]{service}[/bold]: no model in {settings.models_dir}, training it")
        # The same command a user runs: its progress goes straight to the terminal.
        argv = [sys.executable, "-m", "vigie", "train", service]
        done = subprocess.run(argv, check=False)  # noqa: S603 (our own argv, no shell)
        if done.returncode != 0:
            raise ConfigError(f"training {service} failed (see above); the fleet cannot start")


def ensure_dev_client(settings: VigieSettings, fleet: FleetSettings) -> Path:
    """A registered client whose credentials sit in ``<keys>/replay-client.json`` (mode 0600),
    so `vigie replay` works out of the box. Dev only: real integrations get their own client."""
    path = settings.resolved_keys_dir / DEV_CLIENT_FILE
    wanted = set(fleet_scopes(fleet))
    store = fleet.registry.client_store(settings)  # the piece that keeps clients (auth)
    try:
        store.create_schema()
        if path.is_file():
            saved = json.loads(path.read_text())
            allowed = store.verify_client(DEV_CLIENT, str(saved.get("client_secret", "")))
            if allowed is not None and allowed >= wanted:
                return path
        store.remove_client(DEV_CLIENT)
        secret = store.add_client(DEV_CLIENT, sorted(wanted))
    finally:
        store.close()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"client_id": DEV_CLIENT, "client_secret": secret}, out)
    return path


def prepare(settings: VigieSettings, fleet: FleetSettings, console: Console) -> Prepared:
    """Everything the processes need before they start; raises ConfigError with the reason."""
    _require_redis()
    nginx = nginx_binary()
    var_dir = settings.var_dir.resolve()
    (var_dir / "redis").mkdir(parents=True, exist_ok=True)
    init_keys(settings.resolved_keys_dir)
    tls = ensure_dev_certificate(var_dir / "tls")
    _train_missing(settings, fleet, console)
    ensure_dev_client(settings, fleet)
    gateway = write_config(fleet, tls, var_dir)
    check_config(gateway)
    bin_dirs = [str(Path(sys.executable).parent), str(Path(nginx).parent)]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")]),
        "VIGIE_VAR_DIR": str(var_dir),
        "VIGIE_REDIS_URL": fleet.redis_url,
        "VIGIE_FLEET_HOST": fleet.host,
        "VIGIE_FLEET_REDIS_PORT": str(fleet.redis_port),
        "VIGIE_NGINX_PREFIX": str(gateway.prefix),
        "VIGIE_NGINX_CONFIG": str(gateway.config),
        "PYTHONUNBUFFERED": "1",
    }
    # One line per request is written once, by the gateway (var/nginx/logs/access.json, with the
    # request id the services put in their own lines). The services' access lines would repeat
    # it and honcho would relay each through a pipe, which costs more CPU than a prediction
    # (see README, Performance); VIGIE_ACCESS_LOG=true in the environment turns them back on.
    env.setdefault("VIGIE_ACCESS_LOG", "false")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each service gets its own from `vigie serve`
    for piece in fleet.pieces:
        env[port_variable(piece)] = str(fleet.port(piece))
    return Prepared(env=env, tls=tls, gateway=gateway, var_dir=var_dir)


def wait_ready(fleet: FleetSettings, tls: TlsFiles, stop: threading.Event) -> list[str]:
    """Poll every piece on its own port until all are ready (so nginx does not log refused
    connections while they boot), then once through the gateway; the pieces not ready."""
    pending = {p: f"http://{fleet.host}:{fleet.port(p)}/readyz" for p in fleet.pieces}
    deadline = time.monotonic() + fleet.ready_timeout_s
    trust = ssl.create_default_context(cafile=str(tls.cert))
    with httpx.Client(timeout=2, verify=trust) as client:

        def answers(url: str) -> bool:
            try:
                return client.get(url).status_code == 200
            except httpx.HTTPError:
                return False

        while pending and time.monotonic() < deadline and not stop.is_set():
            pending = {p: url for p, url in pending.items() if not answers(url)}
            stop.wait(0.5)
        if pending:
            return sorted(pending)
        via_gateway = {p: f"{fleet.gateway_url}{fleet.prefix(p)}readyz" for p in fleet.pieces}
        while time.monotonic() < deadline and not stop.is_set():
            missing = sorted(p for p, url in via_gateway.items() if not answers(url))
            if not missing:
                return []
            stop.wait(0.5)
        return [f"gateway -> {p}" for p in sorted(via_gateway)]


def banner(settings: VigieSettings, fleet: FleetSettings, prepared: Prepared) -> str:
    """URLs, a one-hour token with every scope, and a curl that works as printed."""
    token = issue_token(
        load_signing_key(settings.resolved_keys_dir),
        sub="dev",
        scopes=fleet_scopes(fleet),
        ttl_s=3600,
    )
    cert = os.path.relpath(prepared.tls.cert)
    gw = fleet.gateway_url
    width = max(len(p) for p in fleet.pieces) + 2
    lines = [
        "",
        "Vigie fleet ready",
        f"  {'gateway':<{width}}{gw}/ and http://{fleet.host}:{fleet.http_port}/  (CA: {cert})",
    ]
    for piece in fleet.pieces:
        lines.append(f"  {piece:<{width}}{gw}{fleet.prefix(piece)}  (direct: http://{fleet.host}:"
                     f"{fleet.port(piece)}, /metrics there)")  # fmt: skip
    example = fleet.services[0] if fleet.services else fleet.pieces[0]
    lines += [
        f"  {'redis':<{width}}{fleet.redis_url}",
        f"  {'logs':<{width}}gateway: {os.path.relpath(prepared.gateway.access_log)}; "
        "services: below (errors, lifecycle; VIGIE_ACCESS_LOG=true adds a line per request)",
        "",
        "token (1 h, every scope):",
        f"  export TOKEN={token}",
        "try:",
        f'  curl --cacert {cert} -H "Authorization: Bearer $TOKEN" {gw}{fleet.prefix(example)}'
        "v1/model",
        f"  vigie replay {example} --data FILE.csv --rate 20   (see README: Replay real data)",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run(settings: VigieSettings, fleet: FleetSettings, console: Console) -> int:
    """Prepare, start every process under honcho, print the banner when ready; honcho's exit
    code is returned once every process has stopped."""
    prepared = prepare(settings, fleet, console)
    names = ["redis", *fleet.pieces, "gateway"]
    argv = [
        sys.executable, "-m", "honcho", "start",
        "-f", str(PROCFILE), "-d", str(REPO_ROOT), "--no-colour", *names,
    ]  # fmt: skip
    console.print(f"starting {', '.join(names)}")
    # Same process group: a Ctrl-C on the terminal reaches honcho, which stops its processes.
    honcho = subprocess.Popen(argv, env=prepared.env)  # noqa: S603 (our own argv, no shell)
    stop = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stop.set()
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # honcho got it too

    def announce() -> None:
        missing = wait_ready(fleet, prepared.tls, stop)
        if stop.is_set():
            return
        if missing:
            console.print(f"[red]not ready after {fleet.ready_timeout_s:.0f} s:[/red] {missing}")
        else:
            console.print(banner(settings, fleet, prepared), highlight=False, soft_wrap=True)

    threading.Thread(target=announce, name="fleet-ready", daemon=True).start()
    code = honcho.wait()
    # Stopped on request: a clean exit. Otherwise a process died and honcho stopped the rest.
    interrupted = stop.is_set()
    stop.set()
    return 0 if interrupted else code
