"""The ``vigie`` command (design.md section 7)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vigie.auth.cli import clients_app, keys_app, token_app
from vigie.contract.errors import ConfigError
from vigie.models.store import ModelLoadError, ModelStore
from vigie.ops.fleet import PORTS, SINGLE_WORKER, app_spec
from vigie.ops.fleet_cli import fleet_app
from vigie.settings import VigieSettings

app = typer.Typer(
    help="Vigie: prediction services for people who run physical systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(clients_app, name="clients")
app.add_typer(fleet_app, name="fleet")
models_app = typer.Typer(help="Inspect the models in service.", no_args_is_help=True)
app.add_typer(models_app, name="models")

err = Console(stderr=True, soft_wrap=True)  # never break a path or a version across lines

ServiceArg = Annotated[str, typer.Argument(help="service name, e.g. transformer-temperature")]


def _service(name: str, settings: VigieSettings):  # type: ignore[no-untyped-def]
    from vigie_services import load_service

    try:
        return load_service(name)(settings)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None


def _settings() -> VigieSettings:
    try:
        return VigieSettings()
    except ValueError as exc:
        err.print(f"[red]bad configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def train(
    service: ServiceArg,
    data_dir: Annotated[
        Path | None, typer.Option(help="data directory (default VIGIE_DATA_DIR)")
    ] = None,
) -> None:
    """Train SERVICE from the data directory, write a new version and make it current."""
    settings = _settings()
    svc = _service(service, settings)
    source = data_dir or settings.data_dir
    with err.status(f"training {service} from {source}") as status:

        def progress(message: str) -> None:
            status.update(f"{service}: {message}")
            err.log(message)

        try:
            trained = svc.train(source, progress)
        except FileNotFoundError as exc:
            err.print(f"[red]{exc}[/red] (set VIGIE_DATA_DIR or --data-dir)")
            raise typer.Exit(1) from None
        except ValueError as exc:  # data present but unusable: say why, no traceback
            err.print(f"[red]cannot train {service} from {source}: {exc}[/red]")
            raise typer.Exit(1) from None
    loaded = ModelStore(settings.models_dir).publish(service, trained.model, trained.card)
    err.print(
        f"[green]{service} {loaded.version}[/green] is current "
        f"({loaded.path}, sha256 {loaded.card.artifact.sha256[:12]}...)"
    )


@app.command()
def evaluate(
    service: ServiceArg,
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV to score")],
    asset: Annotated[str | None, typer.Option(help="asset the CSV belongs to")] = None,
) -> None:
    """Score the current model of SERVICE on a CSV; print one JSON object of metrics."""
    settings = _settings()
    svc = _service(service, settings)
    try:
        loaded = ModelStore(settings.models_dir).load_current(service)
    except ModelLoadError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    try:
        metrics = svc.evaluate(loaded.model, data, asset)
    except ValueError as exc:
        err.print(f"[red]cannot evaluate {data}: {exc}[/red]")
        raise typer.Exit(1) from None
    typer.echo(json.dumps(metrics))


@app.command()
def replay(
    service: ServiceArg,
    data: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="CSV shaped like the training file")
    ],
    rate: Annotated[
        float, typer.Option(min=0, help="rows per second; 0 = as fast as answers come")
    ] = 0.0,
    batch: Annotated[
        int | None, typer.Option(min=1, help="new rows per request (default: the service's)")
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option(
            help="asset id (default: the service's; energy-anomaly: the one series to replay)"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="replay at most this many rows")] = None,
    gateway: Annotated[
        str, typer.Option(envvar="VIGIE_GATEWAY_URL", help="gateway base URL")
    ] = "https://127.0.0.1:8443",
    cacert: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CA certificate of the gateway (default: var/tls/gateway.crt if it exists)",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="do not verify the gateway's certificate")
    ] = False,
    client_id: Annotated[
        str | None,
        typer.Option(
            envvar="VIGIE_CLIENT_ID",
            help="OAuth2 client (default: the one in var/keys/replay-client.json)",
        ),
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(envvar="VIGIE_CLIENT_SECRET", help="its secret")
    ] = None,
    max_retries: Annotated[int, typer.Option(min=0, max=50, help="retries per request")] = 5,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per HTTP request")] = 30.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the summary as one JSON object on stdout")
    ] = False,
) -> None:
    """Replay a CSV of real measurements to SERVICE through the gateway, as an integration
    would (tokens, pacing, retries with idempotency keys); exit 1 if a batch failed."""
    from vigie.client import replay as rp

    settings = _settings()
    svc = _service(service, settings)
    try:
        credentials = rp.load_credentials(
            client_id, client_secret, settings.resolved_keys_dir, rp.scope_for(service)
        )
    except rp.ReplayError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    try:
        todo = list(rp.limited(svc.replay_requests(data, asset, batch or svc.replay_batch), limit))
    except (ValueError, NotImplementedError) as exc:
        err.print(f"cannot replay {data}: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    with rp.progress(err, sum(r.rows for r in todo)) as on_result:
        summary = rp.replay(
            service,
            todo,
            route=rp.gateway_route(gateway),
            credentials=credentials,
            verify=rp.tls_verify(cacert, insecure, settings.var_dir),
            rate=rate,
            timeout_s=timeout,
            policy=rp.RetryPolicy(max_retries=max_retries),
            on_result=on_result,
        )
    typer.echo(json.dumps(summary.as_dict()) if as_json else rp.format_summary(summary))
    raise typer.Exit(0 if summary.ok else 1)


def _prepare(service: str, settings: VigieSettings) -> None:
    """Check the configuration and create missing tables once, before gunicorn forks: bad
    settings fail here with the reason, and workers never race to create a table."""
    if service == "auth":
        from vigie_services.auth.clients import ClientStore

        store = ClientStore.from_settings(settings)
        store.create_schema()
        store.close()
        return
    if service == "alerting":
        from vigie_services.alerting.app import create_app as create_alerting
        from vigie_services.alerting.db import migrate
        from vigie_services.alerting.settings import AlertingSettings

        alerting = AlertingSettings()
        create_alerting(alerting)
        migrate(alerting.database_url_for(service))
        return
    from vigie.io.outbox import Spool, spool_path
    from vigie.io.prediction_log import ensure_schema, make_engine
    from vigie.serve.app import create_app

    create_app(_service(service, settings), settings)
    engine = make_engine(settings.database_url_for(service))
    ensure_schema(engine)
    engine.dispose()
    # The workers' shared outbox, made (and switched to WAL) once before they fork.
    Spool(spool_path(settings, service))


@app.command()
def serve(
    service: ServiceArg,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: the design.md port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, envvar="VIGIE_WORKERS")] = 2,
) -> None:
    """Run SERVICE (or `auth`) under gunicorn with uvicorn workers."""
    if service not in PORTS:
        raise typer.BadParameter(f"unknown service {service!r}; known: {', '.join(PORTS)}")
    settings = _settings()
    try:
        _prepare(service, settings)
    except ConfigError as exc:
        err.print(f"[red]cannot start {service}:[/red] {exc}")
        raise typer.Exit(2) from None
    metrics_dir = settings.var_dir / "prometheus" / service
    shutil.rmtree(metrics_dir, ignore_errors=True)  # stale files would skew counters
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    argv = [
        sys.executable, "-m", "gunicorn",
        "-c", "python:vigie.serve.gunicorn_conf",
        "--workers", str(1 if service in SINGLE_WORKER else workers),
        "--bind", f"{host}:{port or PORTS[service]}",
        "--name", f"vigie-{service}",
        app_spec(service),
    ]  # fmt: skip
    os.execv(sys.executable, argv)  # noqa: S606 (gunicorn replaces this process)


@models_app.command("show")
def models_show(service: ServiceArg) -> None:
    """Print the model card of SERVICE's current model, after verifying its sha256."""
    settings = _settings()
    try:
        loaded = ModelStore(settings.models_dir).load_current(service)
    except ModelLoadError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    typer.echo(json.dumps(loaded.card.model_dump(), indent=2))


@models_app.command("has")
def models_has(service: ServiceArg) -> None:
    """Exit 0 when SERVICE has a current model (used by `make` to train only what is missing)."""
    settings = _settings()
    raise typer.Exit(0 if ModelStore(settings.models_dir).has_current(service) else 1)


def main() -> None:
    app()
