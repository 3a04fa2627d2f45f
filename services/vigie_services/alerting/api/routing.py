"""The router of one resource: its 405 answers list in ``Allow`` every method of the path.

Starlette answers a method that a path does not serve from the first route of that path, with
that route's methods only: ``PUT /v1/silences`` said ``Allow: GET`` though ``POST`` is served too
(RFC 9110 15.5.6: ``Allow`` lists the methods the resource supports). The routes of a path all
belong to one resource router, which tells each of them its siblings' methods.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send


class AllowingRoute(APIRoute):
    allowed: frozenset[str] = frozenset()  # every method served at this path (ResourceRouter)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.allowed | self.methods))
            raise HTTPException(status_code=405, headers={"Allow": allow})
        await super().handle(scope, receive, send)


class ResourceRouter(APIRouter):
    """An :class:`APIRouter` of :class:`AllowingRoute` s that keeps their ``allowed`` current."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=AllowingRoute, **kwargs)

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        added = self.routes[-1]
        assert isinstance(added, AllowingRoute)
        same_path = [
            r for r in self.routes if isinstance(r, AllowingRoute) and r.path == added.path
        ]
        allowed = frozenset(m for r in same_path for m in r.methods or ())
        for route in same_path:
            route.allowed = allowed
