"""Notification channels of alerting: email, webhook, push (ntfy) and sms (HTTP gateway).

``build_notifiers(settings, client)`` gives one :class:`Notifier` per channel; ``render`` gives
the texts; ``validate_target`` checks a subscriber's target before it is stored.
"""

from __future__ import annotations

import httpx

from vigie_services.alerting.notifiers.base import (
    CHANNELS,
    LANGUAGES,
    DeliveryError,
    Notification,
    Notifier,
)
from vigie_services.alerting.notifiers.email import EmailNotifier
from vigie_services.alerting.notifiers.messages import KINDS, Rendered, render
from vigie_services.alerting.notifiers.push import PushNotifier
from vigie_services.alerting.notifiers.sms import SmsNotifier
from vigie_services.alerting.notifiers.targets import validate_target
from vigie_services.alerting.notifiers.webhook import WebhookNotifier
from vigie_services.alerting.settings import AlertingSettings

__all__ = [
    "CHANNELS",
    "KINDS",
    "LANGUAGES",
    "DeliveryError",
    "EmailNotifier",
    "Notification",
    "Notifier",
    "PushNotifier",
    "Rendered",
    "SmsNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "render",
    "validate_target",
]


def build_notifiers(settings: AlertingSettings, client: httpx.AsyncClient) -> dict[str, Notifier]:
    """One notifier per channel, keyed by channel name; the HTTP ones share ``client``.

    The client is the caller's (one per process, closed by the caller); each request sets its own
    timeout (``send_timeout_s``) and never follows redirects.
    """
    notifiers: list[Notifier] = [
        EmailNotifier(settings),
        WebhookNotifier(settings, client),
        PushNotifier(settings, client),
        SmsNotifier(settings, client),
    ]
    return {notifier.channel: notifier for notifier in notifiers}
