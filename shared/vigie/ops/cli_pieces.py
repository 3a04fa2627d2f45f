"""The registry of pieces as the ``vigie`` command sees it.

- :func:`registry_of`: the registry of the running command: the ``obj`` it was invoked with when
  that is a :class:`~vigie.ops.registry.Registry` (tests:
  ``CliRunner().invoke(app, args, obj=registry)``), else the installed one.
- :func:`piece_name` and :func:`service_name`: typer callbacks of an argument that accept the
  registry's names and refuse others with the list of known ones.
- :class:`PiecesGroup`: the root command group, which adds the command groups pieces bring
  (:attr:`Piece.cli <vigie.ops.registry.Piece.cli>`) when the command line is resolved, not at
  import: ``vigie serve`` never imports another piece's code, and an image without a piece's
  package simply lacks its commands.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from vigie.ops.registry import (
    Registry,
    RegistryError,
    UnknownPiece,
    is_importable,
    load,
    resolve,
)


def registry_of(ctx: typer.Context | None) -> Registry:
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Registry) else load()


def piece_name(ctx: typer.Context, value: str) -> str:
    """A piece of the registry (typer ``callback`` of an argument)."""
    try:
        return registry_of(ctx).get(value).name
    except UnknownPiece as exc:
        raise typer.BadParameter(str(exc)) from None


def service_name(ctx: typer.Context, value: str) -> str:
    """A prediction service of the registry (typer ``callback`` of an argument)."""
    try:
        return registry_of(ctx).prediction_service(value).name
    except UnknownPiece as exc:
        raise typer.BadParameter(str(exc)) from None


def piece_commands(registry: Registry) -> dict[str, typer.Typer]:
    """The command groups of ``registry``'s pieces whose code is present here, by name."""
    found: dict[str, typer.Typer] = {}
    for piece in registry:
        if piece.cli is None or not is_importable(piece.cli.app):
            continue
        commands = resolve(piece.cli.app)
        if not isinstance(commands, typer.Typer):
            raise RegistryError(f"{piece.name}: cli {piece.cli.app} is not a typer.Typer")
        found[piece.cli.name] = commands
    return found


class PiecesGroup(TyperGroup):
    """The ``vigie`` group: its own commands, then those of the pieces.

    (``ctx`` and the commands are typed ``Any``: typer's click types are private to it.)
    """

    def _piece_commands(self, ctx: Any) -> dict[str, Any]:
        found = piece_commands(registry_of(ctx))
        shadowing = sorted(set(found) & set(self.commands))
        if shadowing:
            raise RegistryError(f"pieces' commands {shadowing} would hide vigie's own")
        if not found:
            return {}
        # Registered as `app.add_typer(group, name=name)` would: a group even with one command.
        holder = typer.Typer()
        for name, group in found.items():
            holder.add_typer(group, name=name)
        commands: dict[str, Any] = typer.main.get_command(holder).commands  # type: ignore[attr-defined]
        return dict(commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self._piece_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        return self._piece_commands(ctx).get(cmd_name)
