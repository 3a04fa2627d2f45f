"""The alert lifecycle rules, as pure functions (no I/O): easy to read, easy to test.

Per ``(service, asset_id)`` the level moves between NORMAL < ALERTE < CRITIQUE:

============  ===============  =================
from          to               transition
============  ===============  =================
NORMAL        ALERTE/CRITIQUE  ``opened``
ALERTE        CRITIQUE         ``escalated`` (clears an acknowledgement: new severity, new look)
CRITIQUE      ALERTE           ``de-escalated``
ALERTE/CRIT.  NORMAL           ``resolved``
same level    same level       nothing (nobody is notified again)
============  ===============  =================

While an alert is open and unacknowledged, a ``reminder`` goes out every repeat interval.

Who hears about a transition:

* a subscriber whose filters (services, assets) match and whose ``min_level`` is reached by the
  transition's *relevant level*: the higher of the levels before and after, and for
  ``resolved``/``de-escalated`` the alert's peak (whoever heard the alert open hears it close);
* unless an active **silence** matches (service, asset, level; ``None`` matches anything);
* unless it is an ALERTE-level notification while another alert of the *same asset* is open at
  CRITIQUE (**inhibition**: the CRITIQUE one already has everyone's attention).

Silenced and inhibited notifications are recorded as ``suppressed`` with the reason, not dropped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from vigie.contract.levels import Level


class Kind(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    DEESCALATED = "de-escalated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"


NOTIFYING = frozenset({Kind.OPENED, Kind.ESCALATED, Kind.DEESCALATED, Kind.RESOLVED, Kind.REMINDER})


def transition_for(previous: Level, current: Level) -> Kind | None:
    """The transition a level change makes, or ``None`` when the level did not change."""
    if previous is current:
        return None
    if previous is Level.NORMAL:
        return Kind.OPENED
    if current is Level.NORMAL:
        return Kind.RESOLVED
    return Kind.ESCALATED if current.rank > previous.rank else Kind.DEESCALATED


def relevant_level(kind: Kind, before: Level | None, after: Level, peak: Level) -> Level:
    """The level a subscriber's ``min_level`` is compared with."""
    levels = [after, before or Level.NORMAL]
    if kind in (Kind.RESOLVED, Kind.DEESCALATED):
        levels.append(peak)
    return Level.highest(levels)


def matches(allowed: Sequence[str] | None, value: str) -> bool:
    """A subscriber or silence filter: ``None`` (or empty) allows everything."""
    return not allowed or value in allowed


def subscriber_wants(
    services: Sequence[str] | None,
    assets: Sequence[str] | None,
    min_level: Level,
    service: str,
    asset_id: str,
    level: Level,
) -> bool:
    return matches(services, service) and matches(assets, asset_id) and level.rank >= min_level.rank


def silence_applies(
    silence_service: str | None,
    silence_asset: str | None,
    silence_level: str | None,
    starts_at: datetime,
    ends_at: datetime,
    expired: bool,
    *,
    service: str,
    asset_id: str,
    level: Level,
    now: datetime,
) -> bool:
    if expired or not (starts_at <= now < ends_at):
        return False
    return (
        silence_service in (None, service)
        and silence_asset in (None, asset_id)
        and silence_level in (None, level.value)
    )


def inhibited(level: Level, other_open_levels_of_asset: Sequence[Level]) -> bool:
    """An ALERTE notification is muted while the same asset has another alert at CRITIQUE."""
    return level is Level.ALERTE and Level.CRITIQUE in other_open_levels_of_asset


def retry_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): uniform in
    ``[0, min(max_s, base_s * 2**(attempt-1))]`` for the ``attempt``-th failure (1-based).
    Jitter spreads retries so a recovering receiver is not hit by all of them at once."""
    cap = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return rng.uniform(0, cap)
