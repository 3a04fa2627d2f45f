"""The ``vigie`` command (design.md section 7).

Which pieces there are, their ports, apps and preparation come from the registry of pieces
(:mod:`vigie.ops.registry`, as :func:`~vigie.ops.cli_pieces.registry_of` gives it); the
command groups pieces bring (``vigie clients``: auth's) are added by
:class:`~vigie.ops.cli_pieces.PiecesGroup`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vigie.auth.cli import keys_app, token_app
from vigie.contract.errors import ConfigError
from vigie.models.store import ModelLoadError, ModelStore
from vigie.models.training import run_training
from vigie.ops.cli_pieces import PiecesGroup, piece_name, registry_of, service_name
from vigie.ops.db_cli import db_app
from vigie.ops.fleet_cli import fleet_app
from vigie.ops.registry import Kind, Piece, UnknownPiece
from vigie.settings import VigieSettings

app = typer.Typer(
    cls=PiecesGroup,
    help="Vigie: prediction services for people who run physical systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(fleet_app, name="fleet")
app.add_typer(db_app, name="db")
models_app = typer.Typer(help="Inspect the models in service.", no_args_is_help=True)
app.add_typer(models_app, name="models")

err = Console(stderr=True, soft_wrap=True)  # never break a path or a version across lines

ServiceArg = Annotated[
    str,
    typer.Argument(
        callback=service_name,
        metavar="SERVICE",
        help="prediction service, e.g. transformer-temperature (`vigie pieces` lists them)",
    ),
]
PieceArg = Annotated[
    str,
    typer.Argument(
        callback=piece_name,
        metavar="PIECE",
        help="piece of the fleet: auth, alerting or a prediction service (`vigie pieces`)",
    ),
]


def _service(ctx: typer.Context, name: str, settings: VigieSettings):  # type: ignore[no-untyped-def]
    try:
        return registry_of(ctx).service_class(name)(settings)
    except UnknownPiece as exc:
        raise typer.BadParameter(str(exc)) from None


def _settings() -> VigieSettings:
    try:
        return VigieSettings()
    except ValueError as exc:
        err.print(f"[red]bad configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def train(
    ctx: typer.Context,
    service: ServiceArg,
    data_dir: Annotated[
        Path | None, typer.Option(help="data directory (default VIGIE_DATA_DIR)")
    ] = None,
) -> None:
    """Train SERVICE from the data directory, write a new version and make it current."""
    settings = _settings()
    svc = _service(ctx, service, settings)
    source = data_dir or settings.data_dir
    with err.status(f"training {service} from {source}") as status:

        def progress(message: str) -> None:
            status.update(f"{service}: {message}")
            err.log(message)

        try:
            trained = run_training(svc, source, progress)
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
    ctx: typer.Context,
    service: ServiceArg,
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV to score")],
    asset: Annotated[str | None, typer.Option(help="asset the CSV belongs to")] = None,
) -> None:
    """Score the current model of SERVICE on a CSV; print one JSON object of metrics."""
    settings = _settings()
    svc = _service(ctx, service, settings)
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
    ctx: typer.Context,
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
    svc = _service(ctx, service, settings)
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


def gunicorn_argv(piece: Piece, host: str, port: int | None, workers: int) -> list[str]:
    """The gunicorn command ``vigie serve`` runs for ``piece``: its app, on ``port`` (default:
    its design.md port), with ``workers`` uvicorn workers unless its policy says one."""
    return [
        sys.executable, "-m", "gunicorn",
        "-c", "python:vigie.serve.gunicorn_conf",
        "--workers", str(piece.workers_for(workers)),
        "--bind", f"{host}:{port or piece.port}",
        "--name", f"vigie-{piece.name}",
        piece.app,
    ]  # fmt: skip


@app.command()
def serve(
    ctx: typer.Context,
    piece: PieceArg,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: the design.md port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, envvar="VIGIE_WORKERS")] = 2,
) -> None:
    """Run PIECE under gunicorn with uvicorn workers, once its preparation passed (settings
    checked, missing tables created) before gunicorn forks."""
    registry = registry_of(ctx)
    settings = _settings()
    try:
        registry.prepare(piece, settings)
    except ConfigError as exc:
        err.print(f"[red]cannot start {piece}:[/red] {exc}")
        raise typer.Exit(2) from None
    metrics_dir = settings.var_dir / "prometheus" / piece
    shutil.rmtree(metrics_dir, ignore_errors=True)  # stale files would skew counters
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    argv = gunicorn_argv(registry.get(piece), host, port, workers)
    os.execv(sys.executable, argv)  # noqa: S606 (gunicorn replaces this process)


@app.command("pieces")
def pieces(
    ctx: typer.Context,
    kind: Annotated[
        Kind | None, typer.Option(help="only the pieces of this kind (default: all)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="every declaration, as one JSON list on stdout")
    ] = False,
) -> None:
    """List the pieces of the fleet (one name a line, in start order), from the registry."""
    chosen = [p for p in registry_of(ctx) if kind is None or p.kind is kind]
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(p) for p in chosen]))
        return
    for piece in chosen:
        typer.echo(piece.name)


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
