"""SMS channel (generic HTTP gateway) against a real HTTP receiver on loopback."""

from __future__ import annotations

import json

import pytest

from tests.services.alerting.notifiers.helpers import make_notification, make_settings, send_http
from tests.support.receivers import HttpReceiver
from vigie_services.alerting.notifiers import DeliveryError, SmsNotifier, render
from vigie_services.alerting.notifiers.sms import sms_body
from vigie_services.alerting.settings import AlertingSettings


def send_error(settings: AlertingSettings, target: str = "+33612345678") -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send_http(SmsNotifier, settings, make_notification(), target)
    return info.value


def test_template_values_are_json_escaped() -> None:
    text = 'Il a dit "stop"\net c\'est tout \\ fin $to ${text}'
    body = sms_body('{"to": "$to", "text": "$text", "sender": "Vigie"}', "+33612345678", text)
    assert json.loads(body) == {"to": "+33612345678", "text": text, "sender": "Vigie"}


def test_gateway_receives_the_short_text(http_receiver: HttpReceiver) -> None:
    n = make_notification(asset_id='T"1\\', language="fr")
    settings = make_settings(
        sms_gateway_url=http_receiver.url + "/send",
        sms_body_template='{"messages": [{"to": "$to", "body": "$text"}], "from": "VIGIE"}',
        sms_auth_header="Basic dmlnaWU6czNjcmV0",
    )
    send_http(SmsNotifier, settings, n, "+33612345678")
    [req] = http_receiver.wait_for_requests(1)
    assert req.path == "/send"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == "Basic dmlnaWU6czNjcmV0"
    body = req.json()
    short = render(n).short
    assert body == {"messages": [{"to": "+33612345678", "body": short}], "from": "VIGIE"}
    assert 'T"1\\' in short and len(short) <= 160


@pytest.mark.parametrize("target", ["0612345678", "+33 6 12 34 56 78", "+1234", "33612345678"])
def test_bad_phone_is_permanent(http_receiver: HttpReceiver, target: str) -> None:
    error = send_error(make_settings(sms_gateway_url=http_receiver.url), target)
    assert error.permanent and "E.164" in error.reason
    assert http_receiver.requests == []


def test_no_gateway_is_permanent() -> None:
    error = send_error(make_settings(sms_gateway_url=None))
    assert error.permanent and error.reason == "no SMS gateway configured"


@pytest.mark.parametrize("template", ['{"to": "$to", "text": "$txt"}', "{to: $to}"])
def test_bad_template_is_permanent(http_receiver: HttpReceiver, template: str) -> None:
    settings = make_settings(sms_gateway_url=http_receiver.url, sms_body_template=template)
    assert send_error(settings).permanent
    assert http_receiver.requests == []


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (400, True)])
def test_gateway_errors_are_classified(
    http_receiver: HttpReceiver, status: int, permanent: bool
) -> None:
    http_receiver.respond_with(status, body=b'{"error": "quota"}')
    error = send_error(make_settings(sms_gateway_url=http_receiver.url))
    assert error.permanent is permanent and f"HTTP {status}" in error.reason
