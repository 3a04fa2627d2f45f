"""``vigie fleet``: run the whole fleet on this machine, or only render its gateway config.

Registered in the ``vigie`` CLI with ``app.add_typer(fleet_app, name="fleet")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from vigie.contract.errors import ConfigError
from vigie.ops.cli_pieces import registry_of
from vigie.ops.fleet import FleetSettings
from vigie.ops.registry import RegistryError
from vigie.settings import VigieSettings

fleet_app = typer.Typer(help="Run the whole fleet (Redis, auth, alerting, services, gateway).")
_err = Console(stderr=True, soft_wrap=True)


def _settings(ctx: typer.Context) -> tuple[VigieSettings, FleetSettings]:
    """The settings, and the fleet made of the command's registry of pieces."""
    try:
        return VigieSettings(), FleetSettings(registry=registry_of(ctx))
    except (ValidationError, RegistryError) as exc:
        _err.print(f"[red]bad configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@fleet_app.callback()
def _fleet() -> None:
    """Run the whole fleet (Redis, auth, alerting, services, gateway)."""


@fleet_app.command("run")
def fleet_run(ctx: typer.Context) -> None:
    """Prepare what is missing (keys, certificate, models, dev client, gateway config), start
    every piece under honcho and print the URLs and a token once all answer. Ctrl-C stops all.

    Ports and gateway limits come from VIGIE_FLEET_* (see `vigie fleet config --help`)."""
    from vigie.ops.launcher import run

    settings, fleet = _settings(ctx)
    try:
        code = run(settings, fleet, _err)
    except ConfigError as exc:
        _err.print(f"[red]cannot start the fleet:[/red] {exc}")
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@fleet_app.command("config")
def fleet_config(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(help="write the config there instead of <var>/nginx/nginx.conf"),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="certificate as nginx sees it, e.g. /run/secrets/gateway.crt "
            "(with --tls-key; then no dev certificate is made)"
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(help="private key as nginx sees it, e.g. /run/secrets/gateway.key"),
    ] = None,
    access_log: Annotated[
        str | None,
        typer.Option(help="access log path, e.g. /dev/stdout (default: logs/access.json)"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="run `nginx -t` on the result (--no-check: for another machine, e.g. "
            "container host names that only resolve inside compose)",
        ),
    ] = True,
) -> None:
    """Render the gateway's nginx config under <var>/nginx/ (or --out), check it with
    `nginx -t` and print its path (the dev certificate is made if missing, unless --tls-cert
    and --tls-key name the certificate to use).

    Listen address, ports and limits come from VIGIE_FLEET_* (VIGIE_FLEET_HOST=0.0.0.0 in a
    container); the pieces' host names from VIGIE_FLEET_UPSTREAM_HOSTS, e.g.
    '{"auth": "auth.internal"}', or each piece's own name with VIGIE_FLEET_UPSTREAM_BY_NAME=true
    (compose and Kubernetes service names; default: VIGIE_FLEET_HOST)."""
    from vigie.ops.gateway import ACCESS_LOG, check_config, write_config
    from vigie.ops.tls import TlsFiles, ensure_dev_certificate

    if (tls_cert is None) != (tls_key is None):
        _err.print("[red]--tls-cert and --tls-key go together[/red]")
        raise typer.Exit(2)
    settings, fleet = _settings(ctx)
    var_dir = settings.var_dir.resolve()
    try:
        if tls_cert is not None and tls_key is not None:
            tls = TlsFiles(tls_cert, tls_key)
        else:
            tls = ensure_dev_certificate(var_dir / "tls")
        files = write_config(fleet, tls, var_dir, out=out, access_log=access_log or ACCESS_LOG)
        if check:
            check_config(files)
    except ConfigError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(str(files.config))
