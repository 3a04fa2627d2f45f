"""``vigie db``: the pieces' databases, upgraded with their Alembic migrations (:mod:`vigie.io.db`).

::

    vigie db upgrade                  # every piece with a database whose code is here
    vigie db upgrade auth turbine-nox # those pieces
    vigie db current alerting         # the revision its database is at
    vigie db revision solar-flare -m "prediction role" --autogenerate

Which database a piece has:

- a prediction service: the prediction log (:mod:`vigie.io.prediction_migrations`, the same
  migrations for every service, whether each has its own SQLite file or they share a database);
- another piece: the ``MIGRATIONS`` of its code package's ``migrations`` subpackage
  (``vigie_services.auth.migrations``), when it has one; none otherwise.

The URL is the piece's ``VIGIE_DATABASE_URL`` (or its SQLite file under ``var/``), as the piece
itself reads it (:attr:`Migrations.url_for <vigie.io.db.Migrations.url_for>`). A container
image holds one piece's code: with no PIECE named, the pieces whose code is absent are skipped.
``vigie serve`` upgrades a piece's database anyway before its workers start; this command is for
doing it ahead of a release, or on a database no piece runs on yet.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from vigie.io.db import Migrations, SchemaMismatch, UpgradeResult, current_revision, upgrade
from vigie.io.db.revision import new_revision
from vigie.io.prediction_migrations import MIGRATIONS as PREDICTION_LOG
from vigie.ops.cli_pieces import registry_of
from vigie.ops.registry import Piece, Registry, UnknownPiece, is_importable, resolve

db_app = typer.Typer(
    help="The pieces' databases: upgrade them to the latest revision, show their revision.",
    no_args_is_help=True,
)
err = Console(stderr=True, soft_wrap=True, highlight=False)

# What a database that cannot be reached, is refused, or is misconfigured raises.
_FAILURES = (SchemaMismatch, SQLAlchemyError, OSError, ValueError)


def migrations_of(piece: Piece) -> Migrations | None:
    """The migrations of ``piece``'s database; None when it has none (or its code is absent)."""
    if piece.is_prediction:
        return PREDICTION_LOG
    spec = f"{piece.code_package}.migrations:MIGRATIONS"
    if not is_importable(spec):
        return None
    found = resolve(spec)
    if not isinstance(found, Migrations):
        raise TypeError(f"{piece.name}: {spec} is not a vigie.io.db.Migrations")
    return found


def _code_here(piece: Piece) -> bool:
    # find_spec, not an import: a prediction service's module imports its model libraries.
    try:
        return find_spec(piece.code_package) is not None
    except ModuleNotFoundError:  # its parent package is absent too
        return False


def _named(registry: Registry, name: str) -> tuple[Piece, Migrations]:
    try:
        piece = registry.get(name)
    except UnknownPiece as exc:
        raise typer.BadParameter(str(exc), param_hint="PIECE") from None
    migrations = migrations_of(piece)
    if migrations is None:
        where = "its code is not installed here" if not _code_here(piece) else "none declared"
        raise typer.BadParameter(f"{name} has no database ({where})", param_hint="PIECE")
    return piece, migrations


def _chosen(registry: Registry, names: list[str] | None) -> list[tuple[Piece, Migrations]]:
    if names:
        return [_named(registry, name) for name in dict.fromkeys(names)]
    chosen = []
    for piece in registry:
        migrations = migrations_of(piece) if _code_here(piece) else None
        if migrations is not None:
            chosen.append((piece, migrations))
    return chosen


def _where(migrations: Migrations, url: str) -> str:
    return f"({migrations.name}, {make_url(url).render_as_string(hide_password=True)})"


def _what_happened(result: UpgradeResult, migrations: Migrations) -> str:
    if not result.changed:
        return f"at {result.after} already"
    if result.stamped:
        return (
            f"tables made before migrations kept: stamped {migrations.baseline}, "
            f"upgraded to {result.after}"
        )
    if result.before is None:
        return f"created at {result.after}"
    return f"upgraded {result.before} -> {result.after}"


def _url(piece: Piece, migrations: Migrations) -> str:
    try:
        return migrations.database_url(piece.name)
    except ValueError as exc:  # pydantic's ValidationError: a bad VIGIE_* setting
        err.print(f"[red]bad configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def upgrade_command(
    ctx: typer.Context,
    pieces: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[PIECE]...",
            help="pieces to upgrade (default: every piece with a database whose code is here)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Upgrade each piece's database to its latest revision; print what was done."""
    chosen = _chosen(registry_of(ctx), pieces)
    if not chosen:
        err.print("no piece with a database here")
        raise typer.Exit(1)
    failed = []
    for piece, migrations in chosen:
        url = _url(piece, migrations)
        try:
            result = upgrade(url, migrations)
        except _FAILURES as exc:
            err.print(f"[red]{piece.name}: not upgraded {_where(migrations, url)}: {exc}[/red]")
            failed.append(piece.name)
            continue
        typer.echo(f"{piece.name}: {_what_happened(result, migrations)} {_where(migrations, url)}")
    if failed:
        raise typer.Exit(1)


PieceArg = Annotated[str, typer.Argument(metavar="PIECE", help="a piece with a database")]


@db_app.command("current")
def current_command(ctx: typer.Context, piece: PieceArg) -> None:
    """Print the revision PIECE's database is at ("(none)": not created yet)."""
    found, migrations = _named(registry_of(ctx), piece)
    url = _url(found, migrations)
    try:
        revision = current_revision(url, migrations)
    except _FAILURES as exc:
        err.print(f"[red]{piece}: {_where(migrations, url)}: {exc}[/red]")
        raise typer.Exit(1) from None
    typer.echo(revision or "(none)")
    if revision != migrations.head:
        err.print(f"{piece}: the latest revision is {migrations.head}: `vigie db upgrade {piece}`")


@db_app.command("revision")
def revision_command(
    ctx: typer.Context,
    piece: PieceArg,
    message: Annotated[str, typer.Option("-m", "--message", help="what the revision does")],
    autogenerate: Annotated[
        bool, typer.Option(help="compare the tables' models with the database at head")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="database at head to compare with (default: a temp SQLite)")
    ] = None,
) -> None:
    """Write PIECE's next revision (for a prediction service, the prediction log's: shared)."""
    _, migrations = _named(registry_of(ctx), piece)
    path = new_revision(migrations, message, autogenerate=autogenerate, url=url)
    typer.echo(str(path))
