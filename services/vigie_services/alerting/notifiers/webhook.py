"""Webhook channel: an Alertmanager-shaped JSON POST, signed with HMAC-SHA256.

The body is the payload Prometheus Alertmanager sends to webhook receivers (``version`` "4"), so
tools that already consume Alertmanager webhooks understand it, plus a top-level ``vigie`` object
with the exact transition. Headers:

* ``X-Vigie-Delivery-Id``: the same on every retry of one delivery (receivers dedupe on it);
* ``X-Vigie-Alert-Id``;
* ``X-Vigie-Timestamp``: Unix seconds of this attempt;
* ``X-Vigie-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with
  ``webhook_secret`` (only when a secret is configured). The timestamp is not signed; the signed
  body carries ``delivery_id`` for replay detection.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any, ClassVar

import httpx
import orjson

from vigie_services.alerting.notifiers import _http
from vigie_services.alerting.notifiers.base import DeliveryError, Notification
from vigie_services.alerting.notifiers.messages import as_utc, render
from vigie_services.alerting.notifiers.targets import validate_http_url
from vigie_services.alerting.settings import AlertingSettings

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
RECEIVER = "vigie"
USER_AGENT = "vigie-alerting/0.1"


def rfc3339(moment: datetime) -> str:
    """``2026-05-01T10:00:00Z`` (microseconds kept when present)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def fingerprint(n: Notification) -> str:
    """16 hex digits identifying the alert (stable across its transitions)."""
    key = f"{n.service}\x00{n.asset_id}\x00{n.alert_id}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def payload(n: Notification, *, external_url: str = "") -> dict[str, Any]:
    """The webhook body of ``n`` as a dict (see the module docstring)."""
    rendered = render(n)
    status = "resolved" if n.kind == "resolved" else "firing"
    alertname = "VigieTest" if n.kind == "test" else "VigieLevel"
    labels = {
        "alertname": alertname,
        "service": n.service,
        "asset_id": n.asset_id,
        "level": n.level,
    }
    annotations = {"summary": rendered.title, "description": rendered.body}
    ends_at = ZERO_TIME
    if status == "resolved":
        ends_at = rfc3339(n.resolved_at if n.resolved_at is not None else n.observed_at)
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(n.opened_at),
        "endsAt": ends_at,
        "generatorURL": n.alert_url,
        "fingerprint": fingerprint(n),
    }
    group_labels = {"service": n.service, "asset_id": n.asset_id}
    return {
        "version": "4",
        "groupKey": (
            f'{{}}:{{alertname="{alertname}", service="{n.service}", asset_id="{n.asset_id}"}}'
        ),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [alert],
        "vigie": {
            "kind": n.kind,
            "level": n.level,
            "previous_level": n.previous_level,
            "value": n.value,
            "unit": n.unit,
            "threshold": n.threshold,
            "message": n.message,
            "alert_id": n.alert_id,
            "delivery_id": n.delivery_id,
            "transition_id": n.transition_id,
            "model_version": n.model_version,
            "observed_at": rfc3339(n.observed_at),
            "opened_at": rfc3339(n.opened_at),
            "resolved_at": rfc3339(n.resolved_at) if n.resolved_at is not None else None,
            "language": n.language,
            "alert_url": n.alert_url,
        },
    }


def sign(body: bytes, secret: str) -> str:
    """The ``X-Vigie-Signature`` value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs :func:`payload` (JSON) to the target URL."""

    channel: ClassVar[str] = "webhook"

    def __init__(self, settings: AlertingSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification, target: str) -> None:
        error = validate_http_url(target)
        if error is not None:
            raise DeliveryError(f"bad webhook URL: {error}", permanent=True)
        body = orjson.dumps(payload(notification, external_url=self.settings.public_url))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Vigie-Delivery-Id": str(notification.delivery_id),
            "X-Vigie-Alert-Id": str(notification.alert_id),
            "X-Vigie-Timestamp": str(int(time.time())),
        }
        secret = self.settings.webhook_secret
        if secret is not None and secret.get_secret_value():
            headers["X-Vigie-Signature"] = sign(body, secret.get_secret_value())
        await _http.post(
            self.client,
            target,
            content=body,
            headers=headers,
            timeout_s=self.settings.send_timeout_s,
        )
