"""Where replay requests go and when they are sent again.

A :data:`Route` maps ``piece, path`` to a URL (:func:`gateway_route` by default). The retry rules
of :mod:`vigie.client.replay` are here: which failures are transient (connection errors,
timeouts; not a refused TLS certificate), which answers are worth sending again (429, 502, 503,
504, and a 409 with ``Retry-After``), and how long to wait (:class:`RetryPolicy`, ``Retry-After``).
"""

from __future__ import annotations

import email.utils
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

Route = Callable[[str, str], str]  # (piece, path) -> absolute URL

RETRY_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def gateway_route(base_url: str) -> Route:
    """Routes through the gateway: ``auth`` at ``/auth/token``, a service at ``/<service>/...``."""
    base = base_url.rstrip("/")
    return lambda piece, path: f"{base}/{piece}{path}"


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries per request; the n-th waits ``Retry-After`` when the
    answer gave one (capped), else a random time in ``[d/2, d]``, ``d = backoff_s * 2**n``
    capped at ``max_backoff_s``."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**retry)
        return random.uniform(ceiling / 2, ceiling)


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def certificate_refused(exc: BaseException) -> bool:
    """A TLS verification failure: permanent, not worth retrying (the chain holds the cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retryable(response: httpx.Response) -> bool:
    """Worth sending again: overload, gateway trouble, or the same key still in progress."""
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 409 and "retry-after" in response.headers
