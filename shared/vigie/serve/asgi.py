"""Pure-ASGI pieces of a prediction service: the body limit and the hot predict route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigie.contract.errors import PayloadTooLarge, client_error_response
from vigie.serve.http import JSONResponse


class BodyLimit:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = JSONResponse(
                    PayloadTooLarge(f"request body over {limit} bytes").body(), status_code=413
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


Endpoint = Callable[[Request], Awaitable[Response]]


class HotRoute:
    """``POST path`` straight to ``endpoint(scope["app"])``, past Starlette's routing, FastAPI's
    dependency injection and the exception middleware, which together spent as much CPU on the
    event loop as everything else a prediction does. Installed inside the request context,
    metrics and body limit, which still apply; client errors get the one error handler, anything
    else reaches the 500 handler as from any route. Other requests pass through.

    ``endpoint`` is looked up per request from the app (``endpoint_of(app)``): what serves it
    is built in the app's lifespan."""

    def __init__(
        self, app: ASGIApp, *, path: str, endpoint_of: Callable[[Any], Endpoint], route: Any
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint_of = endpoint_of
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # what the metrics label requests by
        request = Request(scope, receive)
        try:
            response = await self.endpoint_of(scope["app"])(request)
        except Exception as exc:
            error = await client_error_response(request, exc)
            if error is None:
                raise
            response = error
        await response(scope, receive, send)
