"""``vigie fleet``: run the whole fleet on this machine, or only render its gateway config.

Registered in the ``vigie`` CLI with ``app.add_typer(fleet_app, name="fleet")``.
"""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from vigie.errors import ConfigError
from vigie.fleet import FleetSettings
from vigie.settings import VigieSettings

fleet_app = typer.Typer(help="Run the whole fleet (Redis, auth, alerting, services, gateway).")
_err = Console(stderr=True, soft_wrap=True)


def _settings() -> tuple[VigieSettings, FleetSettings]:
    try:
        return VigieSettings(), FleetSettings()
    except ValidationError as exc:
        _err.print(f"[red]bad configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@fleet_app.callback()
def _fleet() -> None:
    """Run the whole fleet (Redis, auth, alerting, services, gateway)."""


@fleet_app.command("run")
def fleet_run() -> None:
    """Prepare what is missing (keys, certificate, models, dev client, gateway config), start
    every piece under honcho and print the URLs and a token once all answer. Ctrl-C stops all.

    Ports and gateway limits come from VIGIE_FLEET_* (see `vigie fleet config --help`)."""
    from vigie.launcher import run

    settings, fleet = _settings()
    try:
        code = run(settings, fleet, _err)
    except ConfigError as exc:
        _err.print(f"[red]cannot start the fleet:[/red] {exc}")
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@fleet_app.command("config")
def fleet_config() -> None:
    """Render the gateway's nginx config under <var>/nginx/, check it with `nginx -t` and print
    its path (the dev certificate is made if missing)."""
    from vigie.gateway import check_config, write_config
    from vigie.tls import ensure_dev_certificate

    settings, fleet = _settings()
    var_dir = settings.var_dir.resolve()
    try:
        files = write_config(fleet, ensure_dev_certificate(var_dir / "tls"), var_dir)
        check_config(files)
    except ConfigError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(str(files.config))
