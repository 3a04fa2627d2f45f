"""``vigie keys``, ``vigie token`` and ``vigie clients``: typer sub-apps of the ``vigie`` CLI.

Register them with ``app.add_typer(keys_app, name="keys")`` and so on. Output meant for scripts
(the token, the client secret) goes to stdout alone; everything else goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigie.auth.keys import (
    JWKS_FILE,
    PRIVATE_KEY_FILE,
    init_keys,
    issue_token,
    load_signing_key,
    parse_scopes,
    parse_ttl,
)
from vigie.contract.errors import ConfigError
from vigie.settings import VigieSettings

if TYPE_CHECKING:
    from vigie_services.auth.clients import ClientStore

keys_app = typer.Typer(help="Manage the dev signing keys (RS256) that tokens are signed with.")
token_app = typer.Typer(help="Issue access tokens directly (without the auth service).")
clients_app = typer.Typer(help="Register the OAuth2 clients allowed to get tokens from auth.")

# soft_wrap: paths, ids and secrets must never be broken across lines (people copy them).
_err = Console(stderr=True, soft_wrap=True)

KeysDirOption = Annotated[
    Path | None,
    typer.Option("--keys-dir", help="Keys directory [default: VIGIE_KEYS_DIR or var/keys]"),
]
ScopeOption = Annotated[
    list[str],
    typer.Option("--scope", "-s", help='Space-separated scopes, e.g. "predict:turbine-nox"; '
                 "repeatable"),
]  # fmt: skip


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def _scopes(values: list[str]) -> tuple[str, ...]:
    try:
        scopes = parse_scopes(values)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not scopes:
        raise _fail("give at least one --scope")
    return scopes


# ---------------------------------------------------------------------------------- keys


@keys_app.callback()
def _keys() -> None:
    """Manage the dev signing keys (RS256) that tokens are signed with."""


@keys_app.command("init")
def keys_init(
    keys_dir: KeysDirOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rotate: new key; the previous public key stays trusted")
    ] = False,
) -> None:
    """Generate the signing key pair if there is none (idempotent); --force rotates it."""
    directory = keys_dir or VigieSettings().resolved_keys_dir
    try:
        kid = init_keys(directory, force=force)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _err.print(f"kid:         {kid}", highlight=False)
    _err.print(f"private key: {directory / PRIVATE_KEY_FILE}", highlight=False)
    _err.print(f"public JWKS: {directory / JWKS_FILE}", highlight=False)
    typer.echo(kid)


# --------------------------------------------------------------------------------- token


@token_app.callback()
def _token() -> None:
    """Issue access tokens directly (without the auth service)."""


@token_app.command("issue")
def token_issue(
    sub: Annotated[str, typer.Option("--sub", help="Subject: who the token is for")],
    scope: ScopeOption,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="Lifetime: 900, 900s, 30m, 1h [default: 1h]")
    ] = None,
    keys_dir: KeysDirOption = None,
) -> None:
    """Print a signed token, and nothing else, on stdout: TOKEN=$(vigie token issue ...)."""
    settings = VigieSettings()
    try:
        ttl_s = parse_ttl(ttl) if ttl is not None else settings.token_ttl_s
        key = load_signing_key(keys_dir or settings.resolved_keys_dir)
    except (ValueError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    token = issue_token(
        key,
        sub=sub,
        scopes=_scopes(scope),
        ttl_s=ttl_s,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    typer.echo(token)


# ------------------------------------------------------------------------------- clients


def _store() -> ClientStore:
    # Imported here: the registry lives with the auth service, and only these commands need it.
    from vigie_services.auth.clients import ClientStore

    store = ClientStore.from_settings(VigieSettings())
    try:
        store.create_schema()
    except Exception as exc:  # OSError, SQLAlchemyError: say it in one line, not a traceback
        store.close()
        raise _fail(f"cannot open the client registry {store.url_for_log}: {exc}") from None
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
    from vigie_services.auth.clients import ClientError

    scopes = _scopes(scope)
    store = _store()
    try:
        secret = store.add_client(name, scopes)
    except ClientError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"client_id: {name}")
    typer.echo(f"client_secret: {secret}")
    _err.print(f"scopes: {' '.join(scopes)}", highlight=False)
    _err.print("[yellow]the secret is shown only now: store it safely[/yellow]")


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
        raise _fail(f"no client {name!r}")
    _err.print(f"removed client {name}", highlight=False)
