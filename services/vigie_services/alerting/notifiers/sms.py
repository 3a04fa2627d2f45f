"""SMS channel: a POST to a generic HTTP SMS gateway.

The request body is ``sms_body_template`` with ``$to`` (the E.164 number) and ``$text`` (the
rendered ``short`` line, at most 160 characters) substituted by :class:`string.Template`. Both
values are JSON-string-escaped first (without the surrounding quotes, which the template writes),
so quotes, backslashes or line breaks in the text cannot break the JSON. The result must be valid
JSON; it is sent with ``Content-Type: application/json`` and, when ``sms_auth_header`` is set,
``Authorization: <sms_auth_header>`` (the whole header value, e.g. ``Bearer abc`` or ``Basic
...``).

A missing gateway or a template that does not produce JSON is a permanent error (a retry cannot
fix it; fix the configuration and resend).
"""

from __future__ import annotations

import json
from string import Template
from typing import ClassVar

import httpx

from vigie_services.alerting.notifiers import _http
from vigie_services.alerting.notifiers.base import DeliveryError, Notification
from vigie_services.alerting.notifiers.messages import render
from vigie_services.alerting.notifiers.targets import validate_phone
from vigie_services.alerting.settings import AlertingSettings


def json_string_content(text: str) -> str:
    """``text`` escaped for the inside of a JSON string literal (no surrounding quotes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def sms_body(template: str, to: str, text: str) -> bytes:
    """The gateway request body; raises :class:`DeliveryError` (permanent) for a bad template."""
    try:
        body = Template(template).substitute(
            to=json_string_content(to), text=json_string_content(text)
        )
    except (KeyError, ValueError) as exc:
        raise DeliveryError(
            f"sms_body_template is invalid ({type(exc).__name__}: {exc}); "
            "only $to and $text may be used, write $$ for a dollar sign",
            permanent=True,
        ) from None
    try:
        json.loads(body)
    except ValueError as exc:
        raise DeliveryError(
            f"sms_body_template does not produce valid JSON: {exc}", permanent=True
        ) from None
    return body.encode()


class SmsNotifier:
    """Sends the ``short`` text through the configured HTTP gateway."""

    channel: ClassVar[str] = "sms"

    def __init__(self, settings: AlertingSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification, target: str) -> None:
        gateway = self.settings.sms_gateway_url
        if not gateway:
            raise DeliveryError("no SMS gateway configured", permanent=True)
        error = validate_phone(target)
        if error is not None:
            raise DeliveryError(f"bad phone number: {error}", permanent=True)
        body = sms_body(self.settings.sms_body_template, target, render(notification).short)
        headers = {
            "Content-Type": "application/json",
            "X-Vigie-Delivery-Id": str(notification.delivery_id),
        }
        auth = self.settings.sms_auth_header
        if auth is not None and auth.get_secret_value():
            headers["Authorization"] = auth.get_secret_value()
        await _http.post(
            self.client,
            gateway,
            content=body,
            headers=headers,
            timeout_s=self.settings.send_timeout_s,
        )
