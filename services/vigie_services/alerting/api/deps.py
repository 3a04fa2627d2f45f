"""What the alerting routers share: their dependencies, bounded path and query types, and the
error answers each kind of route declares.

The bounds are the database's: every id column of :mod:`vigie_services.alerting.models` is an SQL
``INTEGER`` (32-bit on PostgreSQL), so an id beyond it names nothing and is refused as a 422 with
its field path before it reaches a driver (SQLite overflows past 64 bits, PostgreSQL past 32).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from vigie.auth.authenticator import Authenticator
from vigie.contract.errors import ServiceUnavailable, error_responses
from vigie_services.alerting.dbthread import DatabaseThread
from vigie_services.alerting.notifiers.base import Notifier

log = logging.getLogger(__name__)
T = TypeVar("T")

INT32_MAX = 2**31 - 1  # the largest value of an SQL INTEGER column: every id here is one
#: asset ids and service names, as the prediction services accept them (1-64 of A-Za-z0-9_.:-)
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"

# What a database that is down, restarting, locked or out of connections raises: a 503 the client
# may retry, not a 500.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_S = 5


def row_id(what: str) -> Any:
    """The ``Path`` of an id of ``what``: 1 to :data:`INT32_MAX`."""
    return Path(ge=1, le=INT32_MAX, description=f"id of the {what}")


AlertId = Annotated[int, row_id("alert")]
SilenceId = Annotated[int, row_id("silence")]
SubscriberId = Annotated[int, row_id("subscriber")]
DeliveryId = Annotated[int, row_id("delivery")]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Cursor = Annotated[
    int | None, Query(ge=1, le=INT32_MAX, description="next_cursor of the previous page")
]
IdentFilter = Annotated[str | None, Query(pattern=IDENT_PATTERN)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a ``/v1`` route: 401 and 403 (token, scope) and 503 (database down)
    for all, plus ``statuses`` (400 when it takes a JSON body, 404, 409, 422 when it has
    parameters)."""
    return error_responses(*sorted({401, 403, 503, *statuses}))


@dataclass(frozen=True)
class AlertingApi:
    """What every router needs, built once by the app: the database, the authenticator, the
    notifiers (filled in by the lifespan, hence a callable), and ``on_change`` to wake the
    delivery worker and the alert-event publisher after a change they must act on."""

    sessions: sessionmaker[Session]
    db: DatabaseThread
    auth: Authenticator
    notifiers: Callable[[], dict[str, Notifier]]
    public_url: str
    on_change: Callable[[], None]

    def _in_tx(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return fn(session)

    async def tx(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in one transaction on the database thread; 503 if the database is
        unreachable."""
        try:
            return await self.db.call(self._in_tx, fn)
        except DATABASE_DOWN as exc:
            log.warning("database unavailable: %s", type(exc).__name__, exc_info=True)
            raise ServiceUnavailable(
                "database unavailable", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None
