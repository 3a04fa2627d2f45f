"""One HTTP POST with a hard deadline, its outcome classified for the delivery worker.

* 2xx: delivered;
* 408, 425, 429, 5xx, connection errors, timeouts: retryable :class:`DeliveryError`;
* anything else (other 4xx, 3xx: redirects are not followed): permanent :class:`DeliveryError`.

The reason names the status, the URL without its query string (which often holds a token) and
the first characters of the response body.
"""

from __future__ import annotations

import asyncio
import re

import httpx

from vigie_services.alerting.notifiers.base import DeliveryError

RETRYABLE_STATUSES = frozenset({408, 425, 429})
EXCERPT_BYTES = 512
EXCERPT_CHARS = 200
_SPACES = re.compile(r"\s+")


def redact(url: str) -> str:
    """``url`` without query, fragment or credentials, for error messages."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "<invalid URL>"
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> int:
    """POST ``content`` to ``url`` within ``timeout_s`` seconds in all; return the 2xx status or
    raise :class:`DeliveryError`."""
    where = redact(url)
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(
                "POST",
                url,
                content=content,
                headers=headers,
                timeout=httpx.Timeout(timeout_s),
                follow_redirects=False,
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return status
                excerpt = await _excerpt(response)
                retry_after = response.headers.get("retry-after")
    except TimeoutError:
        raise DeliveryError(f"timeout after {timeout_s:g} s posting to {where}") from None
    except httpx.TimeoutException as exc:
        raise DeliveryError(
            f"timeout after {timeout_s:g} s posting to {where} ({type(exc).__name__})"
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DeliveryError(f"cannot post to {where}: {exc}", permanent=True) from None
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise DeliveryError(f"cannot reach {where}: {detail}") from None

    reason = f"HTTP {status} from {where}"
    if retry_after:
        reason += f" (Retry-After: {retry_after[:40]})"
    if excerpt:
        reason += f": {excerpt}"
    raise DeliveryError(reason, permanent=not is_retryable_status(status))


async def _excerpt(response: httpx.Response) -> str:
    """The first characters of the response body, on one line (never reads it all)."""
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= EXCERPT_BYTES:
                break
    except httpx.HTTPError:
        pass
    text = _SPACES.sub(" ", data[:EXCERPT_BYTES].decode("utf-8", errors="replace")).strip()
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 3] + "..."
    return text
