"""Push channel: ntfy, with its plain HTTP publishing format.

``POST {ntfy_url}/{topic}`` (or ``POST <target>`` when the target is the full URL of a topic)
with the rendered body as the message and the options as headers: ``Title``, ``Priority``
(CRITIQUE 5 "urgent", ALERTE 4 "high", NORMAL / resolved / test 3 "default"), ``Tags`` (emoji
short codes), ``Click`` (the alert's page) and ``Authorization: Bearer <ntfy_token>`` when a
token is configured.

HTTP header values must be ASCII-safe, and French titles are not ("résolue"): a non-ASCII title
is sent as RFC 2047 encoded words (``=?UTF-8?B?...?=``), which ntfy decodes since v2.4.0. The
message itself is the UTF-8 request body (ntfy keeps bodies of at most 4096 bytes as the message,
so the body is cut below that).
"""

from __future__ import annotations

import base64
from typing import ClassVar
from urllib.parse import quote

import httpx

from vigie_services.alerting.notifiers import _http
from vigie_services.alerting.notifiers.base import DeliveryError, Notification
from vigie_services.alerting.notifiers.messages import render
from vigie_services.alerting.notifiers.targets import TOPIC_RE, validate_push
from vigie_services.alerting.settings import AlertingSettings

MAX_MESSAGE_BYTES = 3900  # ntfy turns bodies over 4096 bytes into attachments
_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> encoded words of 72 chars (RFC 2047: <= 75)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"

PRIORITY = {"CRITIQUE": 5, "ALERTE": 4}
LEVEL_TAG = {"CRITIQUE": "rotating_light", "ALERTE": "warning"}
KIND_TAG = {
    "escalated": "arrow_up",
    "de-escalated": "arrow_down",
    "reminder": "bell",
}


def priority(n: Notification) -> int:
    """ntfy priority: 5 for CRITIQUE, 4 for ALERTE, 3 otherwise and for resolved / test."""
    if n.kind in ("resolved", "test"):
        return 3
    return PRIORITY.get(n.level, 3)


def tags(n: Notification) -> list[str]:
    """Emoji short codes shown before the title."""
    if n.kind == "resolved":
        return ["white_check_mark"]
    if n.kind == "test":
        return ["test_tube"]
    out = [LEVEL_TAG[n.level]] if n.level in LEVEL_TAG else []
    if n.kind in KIND_TAG:
        out.append(KIND_TAG[n.kind])
    return out


def header_text(text: str) -> str:
    """``text`` as is when ASCII, else RFC 2047 ``=?UTF-8?B?...?=`` words joined by spaces."""
    if text.isascii():
        return text
    words: list[bytes] = []
    chunk = b""
    for char in text:  # never split a character across two words
        encoded = char.encode()
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(word).decode()}?=" for word in words)


def topic_url(ntfy_url: str, target: str) -> str:
    """The URL to POST to: ``target`` itself when it is a URL, else ``{ntfy_url}/{target}``."""
    if TOPIC_RE.fullmatch(target):
        return f"{ntfy_url.rstrip('/')}/{target}"
    return target


def _truncate_utf8(text: str, limit: int) -> bytes:
    data = text.encode()
    if len(data) <= limit:
        return data
    return data[: limit - 3].decode("utf-8", errors="ignore").encode() + b"..."


class PushNotifier:
    """Publishes to an ntfy topic."""

    channel: ClassVar[str] = "push"

    def __init__(self, settings: AlertingSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification, target: str) -> None:
        error = validate_push(target)
        if error is not None:
            raise DeliveryError(f"bad push target: {error}", permanent=True)
        rendered = render(notification)
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": header_text(rendered.title),
            "Priority": str(priority(notification)),
            "Click": quote(notification.alert_url, safe=_URL_SAFE),
            "X-Vigie-Delivery-Id": str(notification.delivery_id),
        }
        tag_list = tags(notification)
        if tag_list:
            headers["Tags"] = ",".join(tag_list)
        token = self.settings.ntfy_token
        if token is not None and token.get_secret_value():
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        await _http.post(
            self.client,
            topic_url(self.settings.ntfy_url, target),
            content=_truncate_utf8(rendered.body, MAX_MESSAGE_BYTES),
            headers=headers,
            timeout_s=self.settings.send_timeout_s,
        )
