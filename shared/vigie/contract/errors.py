"""One error taxonomy for every Vigie service.

Every error a client can see is a :class:`VigieError` subclass that carries its HTTP status and a
stable machine-readable ``code``. :func:`install_error_handlers` renders them, and the framework's
own errors (validation, unknown route, malformed JSON), in the envelope of design.md section 2::

    {"error": {"code": "...", "message": "...", "details": [...]}}
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigie.serve.http import JSONResponse

log = logging.getLogger(__name__)


class VigieError(Exception):
    """Base of every client-visible error: subclasses fix ``status`` and ``code``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(VigieError):
    status, code = 400, "bad_request"


class MalformedJSON(BadRequest):
    code = "malformed_json"


class Unauthorized(VigieError):
    """Missing, malformed, expired or untrusted credentials (RFC 6750 ``invalid_token``)."""

    status, code = 401, "unauthorized"

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        challenge = f'Bearer realm="vigie", error="{error}", error_description="{message}"'
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(VigieError):
    """A valid token that lacks the scope the route needs."""

    status, code = 403, "insufficient_scope"

    def __init__(self, message: str, *, scope: str) -> None:
        challenge = f'Bearer realm="vigie", error="insufficient_scope", scope="{scope}"'
        super().__init__(
            message, details=[{"required_scope": scope}], headers={"WWW-Authenticate": challenge}
        )


class NotFound(VigieError):
    status, code = 404, "not_found"


class MethodNotAllowed(VigieError):
    status, code = 405, "method_not_allowed"


class Conflict(VigieError):
    status, code = 409, "conflict"


class PayloadTooLarge(VigieError):
    status, code = 413, "payload_too_large"


class Unprocessable(VigieError):
    """Well-formed JSON whose content is invalid: ``details`` name the field paths."""

    status, code = 422, "validation_error"


class TooManyRequests(VigieError):
    status, code = 429, "too_many_requests"


class ServiceUnavailable(VigieError):
    status, code = 503, "service_unavailable"


class ModelUnavailable(ServiceUnavailable):
    code = "model_unavailable"


class ErrorDetail(BaseModel):
    """One item of ``details``: a validation error names its ``field`` path; other errors may
    carry their own keys (e.g. ``required_scope``)."""

    model_config = {"extra": "allow"}
    field: str | None = Field(
        default=None, description="dotted path of the field, e.g. body.asset_id"
    )
    message: str | None = None
    type: str | None = Field(default=None, description="machine-readable kind of the error")


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. validation_error")
    message: str
    details: list[ErrorDetail]


class ErrorEnvelope(BaseModel):
    """The body of every error answer (design.md section 2)."""

    error: ErrorInfo


_STATUS_TEXT = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing, malformed, expired or untrusted token",
    403: "Valid token without the scope (or the asset) this needs",
    404: "No such resource",
    405: "Method not allowed on this path",
    409: "Conflict with the current state",
    413: "Request body over the size limit",
    422: "Invalid content; details name each field path",
    429: "Too many requests; see Retry-After",
    503: "Not ready (model not loaded, database or Redis unavailable); see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error answers a route can give, each with the envelope:
    ``@router.get(..., responses=error_responses(401, 403, 404))``."""
    return {s: {"model": ErrorEnvelope, "description": _STATUS_TEXT[s]} for s in statuses}


class ConfigError(Exception):
    """Bad configuration found at start-up: the process must not start."""


def field_error(
    loc: tuple[str | int, ...] | list[str | int], msg: str, kind: str
) -> dict[str, Any]:
    """One ``details`` item: ``field`` is the dotted path clients can point at."""
    return {"field": ".".join(str(p) for p in loc), "message": msg, "type": kind}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [field_error(e["loc"], e["msg"], e["type"]) for e in exc.errors()]


def error_response(err: VigieError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _on_vigie_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VigieError)
    return error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        e = next(e for e in errors if e["type"] == "json_invalid")
        ctx = e.get("ctx", {})
        return error_response(
            MalformedJSON(
                f"request body is not valid JSON: {ctx.get('error', e['msg'])}",
                details=[field_error(e["loc"], e["msg"], e["type"])],
            )
        )
    details = _validation_details(exc)
    first = details[0]
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(Unprocessable(message, details=details))


_HTTP_ERRORS: dict[int, type[VigieError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cls = _HTTP_ERRORS.get(exc.status_code)
    message = str(exc.detail) if exc.detail else "error"
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    if cls is None or cls is Unauthorized:
        body = {"error": {"code": f"http_{exc.status_code}", "message": message, "details": []}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    # Keep the exception's headers: a 405 must carry Allow, a 429 its Retry-After.
    return error_response(cls(message, headers=dict(exc.headers or {})))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug of ours, never the client's: log it with the request id, answer opaquely.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(VigieError("internal error; the request id is in the server log"))


async def client_error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """The envelope of a client error raised where Starlette's exception middleware does not
    reach (a hot route served by a middleware), by the same handlers; None for anything else,
    which must go on to the 500 handler."""
    if isinstance(exc, VigieError):
        return await _on_vigie_error(request, exc)
    if isinstance(exc, RequestValidationError):
        return await _on_validation_error(request, exc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one envelope."""
    app.add_exception_handler(VigieError, _on_vigie_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
