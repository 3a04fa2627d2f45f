"""What auth plugs into the runtime (declared in :mod:`vigie_services.pieces`): its preparation
before gunicorn forks, and ``vigie clients``, the commands that register the OAuth2 clients
allowed to get tokens (``POST /token``).

Output meant for scripts (the client secret) goes to stdout alone; everything else to stderr.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigie.auth.cli import ScopeOption, err, fail, scopes_from
from vigie.ops.registry import Piece
from vigie.settings import VigieSettings
from vigie_services.auth.clients import ClientError, ClientStore


def prepare(piece: Piece, settings: VigieSettings) -> None:
    """Create the client registry's tables once, before the workers would race to."""
    del piece
    store = ClientStore.from_settings(settings)
    try:
        store.create_schema()
    finally:
        store.close()


clients_app = typer.Typer(help="Register the OAuth2 clients allowed to get tokens from auth.")


def _store() -> ClientStore:
    store = ClientStore.from_settings(VigieSettings())
    try:
        store.create_schema()
    except Exception as exc:  # OSError, SQLAlchemyError: say it in one line, not a traceback
        store.close()
        raise fail(f"cannot open the client registry {store.url_for_log}: {exc}") from None
    return store


@clients_app.callback()
def _clients() -> None:
    """Register the OAuth2 clients allowed to get tokens from auth."""


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="Client id (letters, digits, '.', '_', '-')")],
    scope: ScopeOption,
) -> None:
    """Register a client; its secret is printed once, here, and never stored in clear."""
    scopes = scopes_from(scope)
    store = _store()
    try:
        secret = store.add_client(name, scopes)
    except ClientError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"client_id: {name}")
    typer.echo(f"client_secret: {secret}")
    err.print(f"scopes: {' '.join(scopes)}", highlight=False)
    err.print("[yellow]the secret is shown only now: store it safely[/yellow]")


@clients_app.command("list")
def clients_list() -> None:
    """List the registered clients and their scopes (never their secrets)."""
    store = _store()
    try:
        clients = store.list_clients()
    finally:
        store.close()
    table = Table("client_id", "scopes", "created_at", "disabled")
    for c in clients:
        created = c.created_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(c.client_id, " ".join(c.scopes), created, "yes" if c.disabled else "")
    Console(width=200).print(table)


@clients_app.command("remove")
def clients_remove(name: Annotated[str, typer.Argument(help="Client id")]) -> None:
    """Delete a client: it can no longer get tokens (tokens already issued live until expiry)."""
    store = _store()
    try:
        removed = store.remove_client(name)
    finally:
        store.close()
    if not removed:
        raise fail(f"no client {name!r}")
    err.print(f"removed client {name}", highlight=False)
