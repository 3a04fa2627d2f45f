"""``vigie keys`` and ``vigie token``: typer sub-apps of the ``vigie`` CLI.

Register them with ``app.add_typer(keys_app, name="keys")`` and so on. Output meant for scripts
(the token) goes to stdout alone; everything else goes to stderr. ``vigie clients`` (the OAuth2
clients auth keeps) is the auth piece's own command group, which the ``vigie`` command finds in
the registry of pieces (:mod:`vigie.ops.registry`); :data:`ScopeOption`, :func:`fail` and
:func:`scopes_from` are shared with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

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

keys_app = typer.Typer(help="Manage the dev signing keys (RS256) that tokens are signed with.")
token_app = typer.Typer(help="Issue access tokens directly (without the auth service).")

# soft_wrap: paths, ids and secrets must never be broken across lines (people copy them).
err = Console(stderr=True, soft_wrap=True)

KeysDirOption = Annotated[
    Path | None,
    typer.Option("--keys-dir", help="Keys directory [default: VIGIE_KEYS_DIR or var/keys]"),
]
ScopeOption = Annotated[
    list[str],
    typer.Option("--scope", "-s", help='Space-separated scopes, e.g. "predict:turbine-nox"; '
                 "repeatable"),
]  # fmt: skip


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit (code 1) to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def scopes_from(values: list[str]) -> tuple[str, ...]:
    """The scopes of repeated ``--scope`` options; exit 1 when they are bad or none."""
    try:
        scopes = parse_scopes(values)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not scopes:
        raise fail("give at least one --scope")
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
        raise fail(str(exc)) from None
    err.print(f"kid:         {kid}", highlight=False)
    err.print(f"private key: {directory / PRIVATE_KEY_FILE}", highlight=False)
    err.print(f"public JWKS: {directory / JWKS_FILE}", highlight=False)
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
        raise fail(str(exc)) from None
    token = issue_token(
        key,
        sub=sub,
        scopes=scopes_from(scope),
        ttl_s=ttl_s,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    typer.echo(token)


def __getattr__(name: str) -> Any:
    # ``clients_app`` moved to the auth piece (its ``cli`` in the registry); found through the
    # registry for the callers that still import it from here.
    if name == "clients_app":
        from vigie.ops.cli_pieces import piece_commands
        from vigie.ops.registry import load

        return piece_commands(load())["clients"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
