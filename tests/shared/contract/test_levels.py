"""Level: NORMAL < ALERTE < CRITIQUE by rank, never alphabetically."""

from __future__ import annotations

import pytest

from vigie.contract.levels import Level


def test_rank_orders_the_levels() -> None:
    assert Level.NORMAL.rank < Level.ALERTE.rank < Level.CRITIQUE.rank
    assert sorted(Level, key=lambda lv: lv.rank) == [Level.NORMAL, Level.ALERTE, Level.CRITIQUE]


def test_alphabetical_order_would_be_wrong() -> None:
    # The trap the rank exists for: "ALERTE" < "CRITIQUE" < "NORMAL" as strings.
    assert max(Level) == Level.NORMAL  # string comparison
    assert Level.highest(Level) == Level.CRITIQUE  # rank comparison


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ([Level.NORMAL], Level.NORMAL),
        ([Level.NORMAL, Level.ALERTE], Level.ALERTE),
        ([Level.ALERTE, Level.NORMAL], Level.ALERTE),
        ([Level.CRITIQUE, Level.NORMAL], Level.CRITIQUE),
        ([Level.NORMAL, Level.CRITIQUE, Level.ALERTE], Level.CRITIQUE),
        ([Level.ALERTE, Level.ALERTE], Level.ALERTE),
        ([], Level.NORMAL),
    ],
)
def test_highest(levels: list[Level], expected: Level) -> None:
    assert Level.highest(levels) is expected
    assert Level.highest(iter(levels)) is expected  # any iterable, consumed once


def test_values_are_the_wire_strings() -> None:
    assert [lv.value for lv in Level] == ["NORMAL", "ALERTE", "CRITIQUE"]
    assert Level("ALERTE") is Level.ALERTE
    assert Level.CRITIQUE == "CRITIQUE"
    assert f"{Level.ALERTE}" == "ALERTE"
    with pytest.raises(ValueError):
        Level("alerte")
