"""The lifecycle rules as a table (pure functions)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from vigie.contract.levels import Level
from vigie_services.alerting.lifecycle import (
    Kind,
    inhibited,
    relevant_level,
    retry_delay,
    silence_applies,
    subscriber_wants,
    transition_for,
)

N, A, C = Level.NORMAL, Level.ALERTE, Level.CRITIQUE

TRANSITIONS = [
    (N, N, None),
    (N, A, Kind.OPENED),
    (N, C, Kind.OPENED),
    (A, A, None),
    (A, C, Kind.ESCALATED),
    (A, N, Kind.RESOLVED),
    (C, C, None),
    (C, A, Kind.DEESCALATED),
    (C, N, Kind.RESOLVED),
]


@pytest.mark.parametrize(("before", "after", "kind"), TRANSITIONS)
def test_transition_table(before: Level, after: Level, kind: Kind | None) -> None:
    assert transition_for(before, after) == kind


@pytest.mark.parametrize(
    ("kind", "before", "after", "peak", "relevant"),
    [
        (Kind.OPENED, N, A, A, A),
        (Kind.ESCALATED, A, C, C, C),
        (Kind.DEESCALATED, C, A, C, C),  # whoever heard CRITIQUE hears it ease
        (Kind.RESOLVED, A, N, C, C),  # ... and hears it end
        (Kind.RESOLVED, A, N, A, A),
        (Kind.REMINDER, A, A, C, A),
    ],
)
def test_relevant_level(
    kind: Kind, before: Level, after: Level, peak: Level, relevant: Level
) -> None:
    assert relevant_level(kind, before, after, peak) is relevant


def test_subscriber_filters() -> None:
    assert subscriber_wants(None, None, A, "turbine-nox", "T1", A)
    assert not subscriber_wants(None, None, C, "turbine-nox", "T1", A)
    assert subscriber_wants(["turbine-nox"], ["T1"], A, "turbine-nox", "T1", C)
    assert not subscriber_wants(["solar-flare"], None, A, "turbine-nox", "T1", C)
    assert not subscriber_wants(None, ["T2"], A, "turbine-nox", "T1", C)
    assert subscriber_wants([], [], N, "x", "y", N)  # empty filter = everything


NOW = datetime(2026, 1, 1, 12, 0)


@pytest.mark.parametrize(
    ("matcher", "window", "expired", "applies"),
    [
        (("turbine-nox", "T1", None), (-60, 60), False, True),
        (("turbine-nox", None, None), (-60, 60), False, True),
        ((None, "T1", "ALERTE"), (-60, 60), False, True),
        ((None, "T1", "CRITIQUE"), (-60, 60), False, False),  # level must match
        (("solar-flare", None, None), (-60, 60), False, False),
        (("turbine-nox", "T1", None), (10, 60), False, False),  # not started
        (("turbine-nox", "T1", None), (-60, 0), False, False),  # ended (end exclusive)
        (("turbine-nox", "T1", None), (-60, 60), True, False),  # expired by hand
    ],
)
def test_silence_matching(
    matcher: tuple[str | None, str | None, str | None],
    window: tuple[int, int],
    expired: bool,
    applies: bool,
) -> None:
    start, end = (NOW + timedelta(seconds=s) for s in window)
    got = silence_applies(
        *matcher, start, end, expired, service="turbine-nox", asset_id="T1", level=A, now=NOW
    )
    assert got is applies


def test_inhibition_mutes_only_alerte_under_an_open_critique() -> None:
    assert inhibited(A, [C])
    assert not inhibited(C, [C])
    assert not inhibited(A, [A])
    assert not inhibited(A, [])
    assert not inhibited(N, [C])


def test_retry_delay_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, cap in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        delays = [retry_delay(attempt, 2.0, 60.0, rng) for _ in range(500)]
        assert min(delays) >= 0 and max(delays) <= cap
        assert max(delays) > 0.8 * cap  # the whole window is used: jitter, not a constant
