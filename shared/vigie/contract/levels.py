"""The three operating levels every prediction maps to (design.md section 3)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Level(StrEnum):
    """``NORMAL < ALERTE < CRITIQUE``; compare with :attr:`rank`, never alphabetically."""

    NORMAL = "NORMAL"
    ALERTE = "ALERTE"
    CRITIQUE = "CRITIQUE"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def highest(levels: Iterable[Level]) -> Level:
        return max(levels, key=_RANK.__getitem__, default=Level.NORMAL)


_RANK = {Level.NORMAL: 0, Level.ALERTE: 1, Level.CRITIQUE: 2}
