"""The nginx gateway: its configuration, rendered from ``nginx/nginx.conf.j2``, and its command.

nginx runs with a prefix directory of its own under ``<var>/nginx/`` (config, pid, temp files,
JSON access log), so several fleets (tests) can run side by side without touching ``/etc``.

The same template serves containers (the ``gateway`` target of the Dockerfile): there the config is
rendered at build time with ``vigie fleet config --out ... --tls-cert /run/secrets/gateway.crt
--tls-key /run/secrets/gateway.key --access-log /dev/stdout --no-check``, each piece found at its
own name (``VIGIE_FLEET_UPSTREAM_BY_NAME=true``) and ``VIGIE_FLEET_HOST=0.0.0.0``.

The routes are the fleet's pieces (:attr:`FleetSettings.pieces`, from the registry of pieces):
each one's gateway prefix goes to its port; the template lists no piece.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2

from vigie.contract.errors import ConfigError
from vigie.ops.fleet import FleetSettings
from vigie.ops.tls import TlsFiles
from vigie.settings import REPO_ROOT

TEMPLATE_DIR = REPO_ROOT / "nginx"
TEMPLATE = "nginx.conf.j2"
ACCESS_LOG = "logs/access.json"
# A value written into the config as one nginx word (paths, host names).
_NGINX_WORD = re.compile(r"[^\s;{}'\"$#\\]+")


@dataclass(frozen=True)
class Route:
    """``<prefix>...`` on the gateway (``/<name>/`` by default) goes to ``http://host:port/...``."""

    name: str
    host: str
    port: int
    prefix: str

    @property
    def upstream(self) -> str:
        return "vigie_" + self.name.replace("-", "_")

    @property
    def forwarded_prefix(self) -> str:
        """The prefix the piece is told it is mounted under (``X-Forwarded-Prefix``)."""
        return self.prefix.rstrip("/")


@dataclass(frozen=True)
class GatewayFiles:
    prefix: Path
    config: Path
    access_log: Path


def routes(fleet: FleetSettings) -> list[Route]:
    return [Route(p, fleet.upstream_host(p), fleet.port(p), fleet.prefix(p)) for p in fleet.pieces]


def _worker_user() -> str | None:
    """nginx workers drop root for an unprivileged user (and its group) when started as root."""
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam("nogroup")
    except KeyError:
        return "nobody"
    return "nobody nogroup"


def _nginx_word(what: str, value: str | Path) -> str:
    """``value`` as one word of the nginx config; ConfigError for what nginx would misread."""
    text = str(value)
    if not _NGINX_WORD.fullmatch(text):
        raise ConfigError(
            f"{what} {text!r}: nginx needs one word, without blanks, quotes, ';', '{{', '}}', "
            "'#', '$' or backslashes"
        )
    return text


def render(fleet: FleetSettings, tls: TlsFiles, *, access_log: str = ACCESS_LOG) -> str:
    """The nginx.conf text for ``fleet``.

    ``tls`` names the certificate and key as nginx will see them (relative paths are resolved
    here; absolute ones, e.g. ``/run/secrets/gateway.crt`` in a container, are kept as they are
    and need not exist on this machine). ``access_log``: a path relative to nginx's prefix, or
    an absolute one such as ``/dev/stdout``. Upstreams are ``fleet.upstream_host(piece)`` (the
    ``VIGIE_FLEET_UPSTREAM_HOSTS`` setting, else ``VIGIE_FLEET_HOST``)."""
    cert, key = (p if p.is_absolute() else p.resolve() for p in (tls.cert, tls.key))
    listen = _nginx_word("listen address", fleet.host)
    upstreams = routes(fleet)
    for route in upstreams:
        _nginx_word(f"upstream host of {route.name}", route.host)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (nginx config, not HTML)
    )
    return env.get_template(TEMPLATE).render(
        user=_worker_user(),
        worker_processes=fleet.nginx_workers,
        error_log_level="warn",
        access_log=_nginx_word("access log", access_log),
        routes=upstreams,
        host=listen,
        http_port=fleet.http_port,
        https_port=fleet.https_port,
        tls_cert=_nginx_word("TLS certificate", cert),
        tls_key=_nginx_word("TLS key", key),
        client_rate=fleet.client_rate,
        client_burst=fleet.client_burst,
        ip_rate=fleet.ip_rate,
        ip_burst=fleet.ip_burst,
        retry_after_s=fleet.retry_after_s,
        max_body=fleet.max_body,
        client_timeout_s=fleet.client_timeout_s,
        upstream_timeout_s=fleet.upstream_timeout_s,
        upstream_connect_timeout_s=fleet.upstream_connect_timeout_s,
    )


def write_config(
    fleet: FleetSettings,
    tls: TlsFiles,
    var_dir: Path,
    *,
    out: Path | None = None,
    access_log: str = ACCESS_LOG,
) -> GatewayFiles:
    """Render the config into ``<var>/nginx/nginx.conf`` (or ``out``), and make the directories
    nginx expects in its prefix ``<var>/nginx/`` (what ``check_config`` and a local run use)."""
    text = render(fleet, tls, access_log=access_log)  # a bad value fails before any write
    prefix = (var_dir / "nginx").resolve()
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    config = out.resolve() if out is not None else prefix / "nginx.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    return GatewayFiles(prefix, config, prefix / access_log)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
    )
    if found is None:
        raise ConfigError("nginx is not installed: apt-get install nginx (or run `make setup`)")
    return found


def nginx_command(files: GatewayFiles) -> list[str]:
    """nginx in the foreground, errors on stderr (the process manager shows them)."""
    return [
        nginx_binary(), "-p", str(files.prefix), "-c", str(files.config),
        "-e", "stderr", "-g", "daemon off;",
    ]  # fmt: skip


def check_config(files: GatewayFiles) -> None:
    """``nginx -t`` on the rendered config; raises ConfigError with nginx's own words."""
    argv = [nginx_binary(), "-t", "-q", "-p", str(files.prefix), "-c", str(files.config)]
    done = subprocess.run(  # noqa: S603 (our own argv, no shell)
        [*argv, "-e", "stderr"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"nginx rejects {files.config}: {done.stderr.strip()}")
