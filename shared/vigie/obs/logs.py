"""Logging of every Vigie process: JSON lines on stderr, each request tagged with its id.

- :func:`configure_logging` (and :func:`logging_config`, which ``gunicorn_conf`` hands to
  gunicorn) send every logger -- ours, gunicorn's master and workers, uvicorn's -- to one stderr
  handler. ``VIGIE_LOG_FORMAT=json`` (default) writes one JSON object per line: ``time`` (ISO
  8601, UTC), ``level``, ``logger``, ``message``, ``process``, ``service``, ``request_id`` (inside
  a request) and any ``extra=`` fields; ``text`` writes the same for humans.
- :class:`RequestContext` (installed by :func:`install_request_context`) takes the request id from
  ``X-Request-ID`` (set by the gateway) or makes one, keeps it in :data:`REQUEST_ID` for the log
  lines written while serving the request, returns it in the response header and writes one
  access line per request (logger ``vigie.access``; probes and ``/metrics`` at DEBUG).
  Neither gunicorn nor uvicorn writes access lines of their own.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from vigie.contract.ids import new_hex

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from vigie.settings import VigieSettings

#: The id of the request being served in this context (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("vigie_request_id", default=None)

ACCESS_LOGGER = "vigie.access"
#: Polled by orchestrators and Prometheus: their access lines are DEBUG, not to flood the logs.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REQUEST_ID_HEADER = b"x-request-id"
# What we accept from clients and the gateway; anything else is replaced by a fresh id.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")

_service: str | None = None


def set_service(name: str | None) -> None:
    """Name the service of this process; every log line carries it as ``service``."""
    global _service
    _service = name


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return REQUEST_ID.get()


class ContextFilter(logging.Filter):
    """Adds ``service`` and (inside a request) ``request_id`` to every record it sees; an
    explicit ``extra=`` value wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if _service is not None:
            fields.setdefault("service", _service)
        request_id = REQUEST_ID.get()
        if request_id is not None:
            fields.setdefault("request_id", request_id)
        return True


def _utc_iso(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's formatter with Vigie's field names and order."""

    FIELDS = ("levelname", "name", "message", "process", "service", "request_id")
    RENAME = {"levelname": "level", "name": "logger"}
    _OPTIONAL = ("service", "request_id")
    # uvicorn adds the message with ANSI colour codes as an extra; the plain one is enough.
    RESERVED = (*RESERVED_ATTRS, "color_message")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            list(self.FIELDS), rename_fields=self.RENAME, reserved_attrs=self.RESERVED, **kwargs
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = _utc_iso(record)  # first, for people reading raw lines
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for name in self._OPTIONAL:
            if log_data.get(name) is None:
                log_data.pop(name, None)
        return log_data


class TextFormatter(logging.Formatter):
    """One plain line per record (``VIGIE_LOG_FORMAT=text``), times in UTC."""

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(process)d %(service)s %(name)s [%(request_id)s] "
            "%(message)s",
            defaults={"service": "-", "request_id": "-"},
        )

    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)


def logging_config(settings: VigieSettings) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` of a Vigie process (also gunicorn's
    ``logconfig_dict``): one stderr handler for everything."""
    level = settings.log_level
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"vigie": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "vigie",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # gunicorn's master and worker lifecycle; uvicorn's gunicorn worker copies this
            # logger's handlers and level onto uvicorn.error (with propagate off).
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "uvicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            # Requests are logged once, by RequestContext. Without handlers these stay silent,
            # and uvicorn, seeing none on uvicorn.access, skips its access lines altogether.
            "gunicorn.access": {"handlers": [], "propagate": False},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # Access lines follow VIGIE_ACCESS_LOG, not VIGIE_LOG_LEVEL=WARNING (probes: DEBUG).
            ACCESS_LOGGER: {"level": "DEBUG" if level == "DEBUG" else "INFO"},
            # One line per alembic plugin at every start says nothing an operator needs.
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(settings: VigieSettings, service: str | None = None) -> None:
    """Send this process's logs to stderr as :func:`logging_config` says."""
    if service is not None:
        set_service(service)
    logging.config.dictConfig(logging_config(settings))
    logging.captureWarnings(True)  # warnings become log lines too, not bare text on stderr


class RequestContext:
    """Pure ASGI middleware: request id in, request id out, one access line per request."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = user_agent = None
        for name, value in scope["headers"]:  # ASGI header names are lower-case
            if name == REQUEST_ID_HEADER:
                given = value
            elif name == b"user-agent":
                user_agent = value
        if given is not None and _VALID_REQUEST_ID.fullmatch(given):
            request_id = given.decode("ascii")
        else:
            request_id = new_hex()
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # what the server answers if the app sends nothing

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response object's own header list stays as it was.
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._access_line(scope, status, start, user_agent)
            REQUEST_ID.reset(token)

    def _access_line(
        self, scope: Scope, status: int, start: float, user_agent: bytes | None
    ) -> None:
        path: str = scope["path"]  # without the query string, which may hold secrets
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        duration_ms = round((time.perf_counter() - start) * 1000, 2)
        client = scope.get("client")
        method: str = scope["method"]
        self.log.log(
            level,
            "%s %s %d %.1fms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client": client[0] if client else None,
                "user_agent": user_agent.decode("latin-1") if user_agent is not None else None,
            },
        )


def install_request_context(app: FastAPI, settings: VigieSettings) -> None:
    """Make :class:`RequestContext` the outermost layer of ``app``.

    Outside even Starlette's ServerErrorMiddleware (which ``add_middleware`` cannot reach): a 500
    tells the client its request id is in the server log, so it must carry the header, and the
    error logged there must carry the id.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("install_request_context: the app has already started")
    build = app.build_middleware_stack
    access_log = settings.access_log

    def build_with_context() -> ASGIApp:
        return RequestContext(build(), access_log=access_log)

    app.build_middleware_stack = build_with_context  # type: ignore[method-assign]
