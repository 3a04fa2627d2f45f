"""Webhook channel against a real HTTP receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

import pytest

from tests.services.alerting.notifiers.helpers import make_notification, make_settings, send_http
from tests.support.receivers import HttpReceiver
from tests.support.servers import free_port
from vigie_services.alerting.notifiers import DeliveryError, WebhookNotifier, render
from vigie_services.alerting.settings import AlertingSettings

SECRET = "webhook-secret-for-tests"


def send_error(settings: AlertingSettings, target: str) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send_http(WebhookNotifier, settings, make_notification(), target)
    return info.value


def test_alertmanager_shaped_payload_signed_with_hmac(http_receiver: HttpReceiver) -> None:
    n = make_notification()
    before = int(time.time())
    send_http(WebhookNotifier, make_settings(webhook_secret=SECRET), n, http_receiver.url + "/hook")
    [req] = http_receiver.wait_for_requests(1)
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-vigie-delivery-id"] == "34"
    assert before <= int(req.headers["x-vigie-timestamp"]) <= int(time.time())
    expected = hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-vigie-signature"], f"sha256={expected}")

    body = req.json()
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "vigie"
    assert isinstance(body["groupKey"], str) and "transformer-temperature" in body["groupKey"]
    [alert] = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "VigieLevel",
        "service": "transformer-temperature",
        "asset_id": "T1",
        "level": "CRITIQUE",
    }
    rendered = render(n)
    assert alert["annotations"] == {"summary": rendered.title, "description": rendered.body}
    assert alert["startsAt"] == "2026-05-01T09:30:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == n.alert_url
    assert len(alert["fingerprint"]) == 16
    vigie = body["vigie"]
    assert {k: vigie[k] for k in ("kind", "level", "previous_level", "unit")} == {
        "kind": "opened",
        "level": "CRITIQUE",
        "previous_level": "NORMAL",
        "unit": "°C",
    }
    assert (vigie["value"], vigie["threshold"]) == (98.3, 95.0)
    assert (vigie["alert_id"], vigie["delivery_id"], vigie["transition_id"]) == (12, 34, 56)
    assert vigie["model_version"] == n.model_version
    assert vigie["observed_at"] == "2026-05-01T10:00:00Z"


def test_resolved_payload_and_no_signature_without_secret(http_receiver: HttpReceiver) -> None:
    n = make_notification(
        kind="resolved",
        level="NORMAL",
        previous_level="ALERTE",
        resolved_at=datetime(2026, 5, 1, 12),
    )
    send_http(WebhookNotifier, make_settings(), n, http_receiver.url)
    [req] = http_receiver.wait_for_requests(1)
    assert "x-vigie-signature" not in req.headers
    body = req.json()
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2026-05-01T12:00:00Z"
    # same alert, same fingerprint, whatever the transition
    first = make_notification(delivery_id=1, transition_id=1)
    send_http(WebhookNotifier, make_settings(), first, http_receiver.url)
    second = http_receiver.wait_for_requests(2)[1].json()
    assert second["alerts"][0]["fingerprint"] == body["alerts"][0]["fingerprint"]


@pytest.mark.parametrize(
    ("status", "permanent"), [(500, False), (503, False), (429, False), (408, False), (404, True)]
)
def test_http_errors_are_classified(
    http_receiver: HttpReceiver, status: int, permanent: bool
) -> None:
    http_receiver.respond_with(status, body=b"<html>\n  nope:   upstream   exploded\n</html>")
    error = send_error(make_settings(), http_receiver.url + "/hook?token=s3cret")
    assert error.permanent is permanent
    assert f"HTTP {status}" in error.reason
    assert "nope: upstream exploded" in error.reason
    assert "s3cret" not in error.reason  # the query string may hold a token


def test_redirect_is_not_followed(http_receiver: HttpReceiver) -> None:
    http_receiver.respond_with(302, headers={"Location": "http://example.org/"})
    error = send_error(make_settings(), http_receiver.url)
    assert error.permanent and "HTTP 302" in error.reason
    assert len(http_receiver.requests) == 1


def test_slow_receiver_times_out_as_retryable(http_receiver: HttpReceiver) -> None:
    http_receiver.respond_with(200, delay=3.0)
    started = time.monotonic()
    error = send_error(make_settings(send_timeout_s=0.5), http_receiver.url)
    elapsed = time.monotonic() - started
    assert not error.permanent and "timeout" in error.reason
    assert elapsed < 2.0


def test_connection_refused_is_retryable() -> None:
    error = send_error(make_settings(), f"http://127.0.0.1:{free_port()}/hook")
    assert not error.permanent and "cannot reach" in error.reason


@pytest.mark.parametrize("target", ["ftp://example.org/hook", "not a url", "mailto:x@example.org"])
def test_bad_url_is_permanent(target: str) -> None:
    assert send_error(make_settings(), target).permanent
