"""HTTP API of alerting, one router per resource: alerts (and acknowledgement), silences,
subscribers, deliveries (dead letters).

Each module's ``router(api)`` builds its routes around an :class:`~.deps.AlertingApi`; the app
includes them all (:func:`routers`). Responses are the models of :mod:`.responses`, errors the
shared envelope, declared per route with :func:`.deps.errors`.

The router modules do without ``from __future__ import annotations``: FastAPI evaluates the route
signatures, and their scope dependencies (``Annotated[Principal, ack_scope]``) are local names of
the builder, which a string annotation could not resolve.
"""

from __future__ import annotations

from fastapi import APIRouter

from vigie_services.alerting.api import alerts, deliveries, silences, subscribers
from vigie_services.alerting.api.deps import AlertingApi

__all__ = ["AlertingApi", "routers"]


def routers(api: AlertingApi) -> list[APIRouter]:
    """Every router of the API, in the order of the OpenAPI document."""
    return [m.router(api) for m in (alerts, silences, subscribers, deliveries)]
