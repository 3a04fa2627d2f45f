"""How every check of this package words what a file lacks: one sentence per problem, naming
the file and the piece, so that a piece added to the registry is easy to trace in each file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

from vigie.ops.registry import Piece, Registry

T = TypeVar("T")


class Problems(list[str]):
    """The problems found in the file ``file`` (its name as the sentences give it)."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def of(self, piece: Piece, problem: str) -> None:
        """``<file>: piece '<name>': <problem>``."""
        self.append(f"{self.file}: piece {piece.name!r}: {problem}")

    def each_found(
        self, registry: Registry, found: Mapping[str, T], missing: str
    ) -> Iterator[tuple[Piece, T]]:
        """Each piece with what ``found`` holds under its name; a piece it lacks is the problem
        ``missing`` instead."""
        for piece in registry:
            item = found.get(piece.name)
            if item is None:
                self.of(piece, missing)
            else:
                yield piece, item


def served_piece(command: Sequence[str]) -> str | None:
    """The piece a ``vigie serve <piece> ...`` command serves (None for any other command)."""
    if len(command) > 2 and list(command[:2]) == ["vigie", "serve"]:
        return command[2]
    return None
