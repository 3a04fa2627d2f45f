"""Helpers of the notifier tests: explicit settings, a sample notification, one send."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol

import httpx

from vigie_services.alerting.notifiers.base import Notification
from vigie_services.alerting.settings import AlertingSettings

BASE_SETTINGS: dict[str, Any] = {
    "smtp_host": "127.0.0.1",
    "smtp_port": 25,
    "smtp_starttls": False,
    "smtp_username": None,
    "smtp_password": None,
    "smtp_from": "Vigie <vigie@example.org>",
    "webhook_secret": None,
    "ntfy_url": "http://127.0.0.1:9",
    "ntfy_token": None,
    "sms_gateway_url": None,
    "sms_body_template": '{"to": "$to", "text": "$text"}',
    "sms_auth_header": None,
    "send_timeout_s": 3.0,
    "public_url": "http://127.0.0.1:8080/alerting",
}


def make_settings(**overrides: Any) -> AlertingSettings:
    """Settings with every channel option explicit (the environment cannot leak in)."""
    return AlertingSettings(**{**BASE_SETTINGS, **overrides})


def make_notification(**overrides: Any) -> Notification:
    """A CRITIQUE ``opened`` notification of transformer T1, in English unless overridden."""
    fields: dict[str, Any] = {
        "delivery_id": 34,
        "alert_id": 12,
        "transition_id": 56,
        "kind": "opened",
        "service": "transformer-temperature",
        "asset_id": "T1",
        "level": "CRITIQUE",
        "previous_level": "NORMAL",
        "value": 98.3,
        "unit": "°C",
        "threshold": 95.0,
        "message": "Oil temperature forecast 98.3 °C above 95 °C",
        "observed_at": datetime(2026, 5, 1, 10, 0),
        "opened_at": datetime(2026, 5, 1, 9, 30),
        "resolved_at": None,
        "model_version": "2026-04-01T00-00-00Z-abc123",
        "language": "en",
        "alert_url": "http://127.0.0.1:8080/alerting/alerts/12",
    }
    fields.update(overrides)
    return Notification(**fields)


class HttpNotifierFactory(Protocol):
    def __call__(self, settings: AlertingSettings, client: httpx.AsyncClient) -> Any: ...


def send_http(
    factory: HttpNotifierFactory,
    settings: AlertingSettings,
    notification: Notification,
    target: str,
) -> None:
    """Build the notifier around a fresh client and send once (inside ``asyncio.run``)."""

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await factory(settings, client).send(notification, target)

    asyncio.run(go())
