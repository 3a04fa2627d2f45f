"""Applying level events to the stored state, one database transaction at a time.

Every function here runs inside the caller's transaction, so a level event's effects (its
``processed_events`` row, the state, the alert, the transition and the deliveries to send) are
committed together or not at all. The stream entry is acknowledged only after that commit: a crash
before it means the entry is read again, and ``processed_events`` makes the second reading a no-op.

A level change opens, escalates, de-escalates or resolves the asset's alert and records the
transition; :mod:`vigie_services.alerting.fanout` then creates its deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from vigie.contract.level_event import LevelEvent
from vigie.contract.levels import Level
from vigie_services.alerting.fanout import Audience, fan_out
from vigie_services.alerting.lifecycle import Kind, transition_for
from vigie_services.alerting.models import Alert, AssetState, Base, ProcessedEvent, Transition


def utc_naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Applied:
    """What one level event did: ``outcome`` is applied, duplicate or stale."""

    outcome: str
    transition: Transition | None = None
    suppressed: tuple[str, ...] = ()  # channels of the deliveries silenced or inhibited


APPLIED = Applied("applied")
DUPLICATE = Applied("duplicate")
STALE = Applied("stale")

# Ids per IN (...) list: far below the bind-parameter limits of SQLite and PostgreSQL.
IN_CHUNK = 500


def apply_event(
    session: Session,
    event: LevelEvent,
    stream_id: str,
    now: datetime,
    public_url: str,
    audience: Audience | None = None,
) -> Applied:
    """Apply one level event; idempotent by ``event_id``. The reference for
    :func:`apply_batch`, which does the same for many events at a fraction of the cost."""
    if session.get(ProcessedEvent, event.event_id) is not None:
        return DUPLICATE
    observed = utc_naive(event.observed_at)
    session.add(ProcessedEvent(**_processed_row(event, stream_id, now)))
    state = session.get(AssetState, (event.service, event.asset_id), with_for_update=True)
    if state is not None and observed < state.observed_at:
        # Older than what we already know (e.g. a backfill): history, not the current state.
        return STALE
    return _apply_level(session, state, event, observed, now, public_url, audience)[2]


@dataclass(slots=True)
class _Track:
    """One asset while a batch is applied: its state row (None until it has one), the level and
    time of the newest event applied, and the newest same-level event not yet written to the row
    (same-level events only overwrite the same fields, so writing the last one is enough)."""

    state: AssetState | None
    level: Level | None = None
    observed_at: datetime | None = None
    pending: LevelEvent | None = None


def apply_batch(
    session: Session,
    entries: Sequence[tuple[str, LevelEvent]],
    now: datetime,
    public_url: str,
    audience: Audience | None = None,
) -> list[Applied]:
    """Apply ``(stream id, event)`` pairs in order, with the outcome :func:`apply_event` would
    give them one after the other in this transaction, one :class:`Applied` per pair.

    Nearly every event repeats its asset's level, so the cost per event is kept to a few
    dictionary operations: one query loads (and locks) the states of the batch's assets, one
    their open alerts, one finds the ids already processed; a same-level event only updates the
    in-memory view, and each row is written once at the end. ``processed_events`` rows go in with
    one executemany. A level change takes the full path of :func:`apply_event` (alert, transition,
    deliveries), in stream order, after the asset's pending same-level update."""
    if not entries:
        return []
    keys = {(e.service, e.asset_id) for _sid, e in entries}
    tracks = {key: _Track(None) for key in keys}
    alert_ids: list[int] = []
    for row in _lock_states(session, keys):
        tracks[(row.service, row.asset_id)] = _Track(row, Level(row.level), row.observed_at)
        if row.open_alert_id is not None:
            alert_ids.append(row.open_alert_id)
    # Held here: the session's identity map keeps unmodified objects only weakly.
    alerts = {a.id: a for a in _in_chunks(session, select(Alert), Alert.id, alert_ids)}
    # After the locks: a transaction that held them has committed its ids by now.
    done = _processed_ids(session, {event.event_id for _sid, event in entries})

    rows: list[dict[str, Any]] = []
    results: list[Applied] = []
    for stream_id, event in entries:
        event_id = event.event_id
        if event_id in done:
            results.append(DUPLICATE)
            continue
        done.add(event_id)
        rows.append(_processed_row(event, stream_id, now))
        track = tracks[(event.service, event.asset_id)]
        observed = utc_naive(event.observed_at)
        state = track.state
        if state is not None:
            assert track.observed_at is not None
            if observed < track.observed_at:
                results.append(STALE)
                continue
            if event.level is track.level:
                track.pending = event
                track.observed_at = observed
                results.append(APPLIED)
                continue
            _write_pending(session, track, alerts, now)
        if audience is None:
            audience = Audience.load(session, now)
        state, alert, applied = _apply_level(
            session, state, event, observed, now, public_url, audience
        )
        track.state, track.level, track.observed_at = state, event.level, observed
        if alert is not None:
            alerts[alert.id] = alert
        results.append(applied)
    for track in tracks.values():
        _write_pending(session, track, alerts, now)
    if rows:  # executemany; Core (not the ORM bulk path): half the cost per row
        session.execute(insert(Base.metadata.tables[ProcessedEvent.__tablename__]), rows)
    return results


def _processed_row(event: LevelEvent, stream_id: str, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "stream_id": stream_id,
        "service": event.service,
        "asset_id": event.asset_id,
        "level": event.level.value,
        "emitted_at": utc_naive(event.emitted_at),
        "processed_at": now,
    }


def _in_chunks(session: Session, query: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    found: list[Any] = []
    for start in range(0, len(values), IN_CHUNK):
        found += session.scalars(query.where(column.in_(values[start : start + IN_CHUNK])))
    return found


def _processed_ids(session: Session, event_ids: set[str]) -> set[str]:
    query = select(ProcessedEvent.event_id)
    return set(_in_chunks(session, query, ProcessedEvent.event_id, sorted(event_ids)))


def _lock_states(session: Session, keys: set[tuple[str, str]]) -> list[AssetState]:
    """The states of these assets, locked for the transaction (rows in key order: two
    transactions locking some of the same rows cannot deadlock)."""
    query = select(AssetState).order_by(AssetState.service, AssetState.asset_id).with_for_update()
    column = tuple_(AssetState.service, AssetState.asset_id)
    return _in_chunks(session, query, column, sorted(keys))


def _write_pending(
    session: Session, track: _Track, alerts: dict[int, Alert], now: datetime
) -> None:
    """Write an asset's newest same-level event to its state row and open alert, as
    :func:`_apply_level` does for an event that does not change the level."""
    event, state = track.pending, track.state
    if event is None or state is None:
        return
    track.pending = None
    assert track.observed_at is not None
    state.level = event.level.value
    state.observed_at = track.observed_at
    state.last_event_id = event.event_id
    state.updated_at = now
    if state.open_alert_id:
        alert = alerts.get(state.open_alert_id) or session.get(Alert, state.open_alert_id)
        if alert is not None:
            _refresh(alert, event)


def _apply_level(
    session: Session,
    state: AssetState | None,
    event: LevelEvent,
    observed: datetime,
    now: datetime,
    public_url: str,
    audience: Audience | None,
) -> tuple[AssetState, Alert | None, Applied]:
    """Apply a (not stale) level event to the asset's state: the state row, and the alert,
    transition and deliveries when the level changes. Returns the state row, the alert (if
    any) and what the event did."""
    previous = Level(state.level) if state is not None else Level.NORMAL
    kind = transition_for(previous, event.level)
    if state is None:
        state = AssetState(
            service=event.service,
            asset_id=event.asset_id,
            level=event.level.value,
            since=observed,
            observed_at=observed,
            last_event_id=event.event_id,
            updated_at=now,
        )
        session.add(state)
    else:
        if kind is not None:
            state.since = observed
        state.level = event.level.value
        state.observed_at = observed
        state.last_event_id = event.event_id
        state.updated_at = now

    alert = session.get(Alert, state.open_alert_id) if state.open_alert_id else None
    if kind is None:
        if alert is not None:  # same level: keep the latest figures, notify nobody
            _refresh(alert, event)
        return state, alert, APPLIED
    if alert is None:
        if kind is Kind.RESOLVED:  # nothing open to resolve (e.g. state predates the alert table)
            return state, None, APPLIED
        kind = Kind.OPENED
        alert = Alert(
            service=event.service,
            asset_id=event.asset_id,
            status="open",
            level=event.level.value,
            peak_level=event.level.value,
            opened_at=observed,
            last_notified_at=now,
            message=event.message,
            model_version=event.model_version,
        )
        session.add(alert)
        session.flush()
        state.open_alert_id = alert.id
    _refresh(alert, event)
    alert.level = event.level.value
    alert.peak_level = Level.highest([Level(alert.peak_level), event.level]).value
    alert.last_notified_at = now
    if kind is Kind.ESCALATED:
        alert.acknowledged_at = alert.acknowledged_by = alert.ack_comment = None
    if kind is Kind.RESOLVED:
        alert.status = "resolved"
        alert.resolved_at = observed
        state.open_alert_id = None
    transition = Transition(
        alert_id=alert.id,
        kind=kind.value,
        from_level=previous.value,
        to_level=event.level.value,
        event_id=event.event_id,
        at=now,
        observed_at=observed,
        value=event.value,
        message=event.message,
        published=False,
    )
    session.add(transition)
    session.flush()
    suppressed = fan_out(session, alert, transition, now, public_url, audience)
    return state, alert, Applied("applied", transition, tuple(suppressed))


def _refresh(alert: Alert, event: LevelEvent) -> None:
    alert.value = event.value
    alert.unit = event.unit
    alert.threshold = event.threshold
    alert.message = event.message
    alert.model_version = event.model_version
