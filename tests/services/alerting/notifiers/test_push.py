"""Push channel (ntfy publishing format) against a real HTTP receiver on loopback."""

from __future__ import annotations

from datetime import datetime
from email.header import decode_header, make_header

import pytest

from tests.services.alerting.notifiers.helpers import make_notification, make_settings, send_http
from tests.support.receivers import HttpReceiver
from vigie_services.alerting.notifiers import DeliveryError, PushNotifier, render
from vigie_services.alerting.notifiers.push import header_text


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


@pytest.mark.parametrize(
    ("kind", "level", "priority", "tags"),
    [
        ("opened", "CRITIQUE", "5", "rotating_light"),
        ("escalated", "CRITIQUE", "5", "rotating_light,arrow_up"),
        ("opened", "ALERTE", "4", "warning"),
        ("de-escalated", "ALERTE", "4", "warning,arrow_down"),
        ("reminder", "ALERTE", "4", "warning,bell"),
        ("resolved", "NORMAL", "3", "white_check_mark"),
        ("test", "NORMAL", "3", "test_tube"),
    ],
)
def test_headers_per_level(
    http_receiver: HttpReceiver, kind: str, level: str, priority: str, tags: str
) -> None:
    n = make_notification(
        kind=kind,
        level=level,
        resolved_at=datetime(2026, 5, 1, 12) if kind == "resolved" else None,
    )
    settings = make_settings(ntfy_url=http_receiver.url + "/")
    send_http(PushNotifier, settings, n, "vigie-oncall")
    [req] = http_receiver.wait_for_requests(1)
    rendered = render(n)
    assert req.method == "POST" and req.path == "/vigie-oncall"
    assert req.headers["title"] == rendered.title  # English titles are plain ASCII
    assert req.headers["priority"] == priority
    assert req.headers["tags"] == tags
    assert req.headers["click"] == n.alert_url
    assert "authorization" not in req.headers
    assert req.body.decode() == rendered.body


def test_french_title_token_and_full_topic_url(http_receiver: HttpReceiver) -> None:
    n = make_notification(
        language="fr", kind="resolved", level="NORMAL", resolved_at=datetime(2026, 5, 1, 12)
    )
    settings = make_settings(ntfy_url="http://127.0.0.1:9", ntfy_token="tk_abc123")
    send_http(PushNotifier, settings, n, http_receiver.url + "/ntfy/vigie-fr")
    [req] = http_receiver.wait_for_requests(1)
    assert req.path == "/ntfy/vigie-fr"
    assert req.headers["authorization"] == "Bearer tk_abc123"
    title = req.headers["title"]
    assert title.isascii() and title.startswith("=?UTF-8?B?")
    assert decoded(title) == "[NORMAL] transformer-temperature T1: alerte résolue"
    assert "alerte de l'équipement T1" in req.body.decode("utf-8")


def test_rfc2047_words_stay_short_and_decode_back() -> None:
    title = "[CRITIQUE] turbine-nox GT-été-01: alerte aggravée " + "é" * 60 + " 🚨"
    encoded = header_text(title)
    assert encoded.isascii()
    assert all(len(word) <= 75 for word in encoded.split(" "))
    assert decoded(encoded) == title
    assert header_text("plain ASCII") == "plain ASCII"


def test_long_body_is_cut_below_ntfy_message_limit(http_receiver: HttpReceiver) -> None:
    n = make_notification(message="é" * 5000)
    send_http(PushNotifier, make_settings(ntfy_url=http_receiver.url), n, "t")
    [req] = http_receiver.wait_for_requests(1)
    assert len(req.body) <= 4096
    assert req.body.decode("utf-8").endswith("...")


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (429, False), (403, True)])
def test_errors_are_classified(http_receiver: HttpReceiver, status: int, permanent: bool) -> None:
    http_receiver.respond_with(status, body=b'{"code":40301,"error":"forbidden"}')
    with pytest.raises(DeliveryError) as info:
        send_http(
            PushNotifier,
            make_settings(ntfy_url=http_receiver.url),
            make_notification(),
            "vigie",
        )
    assert info.value.permanent is permanent
    assert f"HTTP {status}" in info.value.reason and "forbidden" in info.value.reason


def test_bad_topic_is_permanent() -> None:
    with pytest.raises(DeliveryError) as info:
        send_http(PushNotifier, make_settings(), make_notification(), "no spaces allowed")
    assert info.value.permanent
