"""E-mail channel against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from tests.services.alerting.notifiers.helpers import make_notification, make_settings
from tests.support.receivers import SmtpSink, self_signed_tls
from tests.support.servers import free_port
from vigie_services.alerting.notifiers import DeliveryError, EmailNotifier, Notification
from vigie_services.alerting.notifiers.messages import render
from vigie_services.alerting.settings import AlertingSettings


def send(
    settings: AlertingSettings,
    notification: Notification,
    target: str = "oncall@example.org",
    tls_context: ssl.SSLContext | None = None,
) -> None:
    notifier = EmailNotifier(settings, tls_context=tls_context)
    asyncio.run(notifier.send(notification, target))


def send_error(settings: AlertingSettings, target: str = "oncall@example.org") -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send(settings, make_notification(), target)
    return info.value


def test_message_arrives_with_headers_and_body(smtp_sink: SmtpSink) -> None:
    n = make_notification(language="fr", kind="resolved", level="NORMAL", value=91.0)
    send(make_settings(smtp_port=smtp_sink.port), n)
    [mail] = smtp_sink.wait_for_messages(1)
    rendered = render(n)
    assert mail.mail_from == "vigie@example.org"
    assert mail.rcpt_tos == ["oncall@example.org"]
    m = mail.message
    assert m["From"] == "Vigie <vigie@example.org>"
    assert m["To"] == "oncall@example.org"
    assert m["Subject"] == rendered.title == "[NORMAL] transformer-temperature T1: alerte résolue"
    assert m["Message-ID"] == "<vigie-delivery-34@example.org>"
    assert m["References"] == "<vigie-alert-12@example.org>"
    assert m["X-Vigie-Alert-Id"] == "12"
    assert m["X-Vigie-Delivery-Id"] == "34"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["Content-Language"] == "fr"
    assert m.get_content_type() == "text/plain"
    assert m.get_content_charset() == "utf-8"
    assert m.get_content() == rendered.body
    assert "Importance" not in m  # resolved: nothing urgent about it


def test_critique_is_marked_important_and_retries_keep_the_message_id(
    smtp_sink: SmtpSink,
) -> None:
    settings = make_settings(smtp_port=smtp_sink.port)
    n = make_notification()
    send(settings, n)
    send(settings, n)  # a retry after an unknown outcome
    first, second = smtp_sink.wait_for_messages(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert first.message["Importance"] == "high"


def test_server_down_is_retryable() -> None:
    started = time.monotonic()
    error = send_error(make_settings(smtp_port=free_port()))
    assert not error.permanent
    assert "cannot connect" in error.reason or "onnect" in error.reason
    assert time.monotonic() - started < 3


def test_recipient_refused_550_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_recipients("550 5.1.1 No such user here")
    error = send_error(make_settings(smtp_port=smtp_sink.port), "nobody@example.org")
    assert error.permanent
    assert "550" in error.reason and "nobody@example.org" in error.reason
    assert smtp_sink.messages == []


def test_recipient_deferred_451_is_retryable(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_recipients("451 4.7.1 Greylisted, try again later")
    error = send_error(make_settings(smtp_port=smtp_sink.port))
    assert not error.permanent and "451" in error.reason


def test_message_refused_554_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_data("554 5.6.0 Message content rejected")
    error = send_error(make_settings(smtp_port=smtp_sink.port))
    assert error.permanent and "554" in error.reason


def test_bad_address_is_permanent_and_nothing_is_sent(smtp_sink: SmtpSink) -> None:
    error = send_error(make_settings(smtp_port=smtp_sink.port), "not-an-address")
    assert error.permanent
    assert smtp_sink.messages == []


def test_starttls_and_login(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed_tls(tmp_path / "tls")
    with SmtpSink(tls_context=server_ctx, require_starttls=True, auth=("vigie", "s3cret")) as sink:
        settings = make_settings(
            smtp_port=sink.port,
            smtp_starttls=True,
            smtp_username="vigie",
            smtp_password="s3cret",
        )
        send(settings, make_notification(), tls_context=client_ctx)
        [mail] = sink.wait_for_messages(1)
        assert mail.tls and mail.login == "vigie"

        wrong = make_settings(
            smtp_port=sink.port,
            smtp_starttls=True,
            smtp_username="vigie",
            smtp_password="wrong",
        )
        with pytest.raises(DeliveryError) as info:
            send(wrong, make_notification(), tls_context=client_ctx)
        assert not info.value.permanent and "535" in info.value.reason

        # the default context does not trust the self-signed certificate
        with pytest.raises(DeliveryError) as info:
            send(settings, make_notification())
        assert not info.value.permanent
        assert len(sink.messages) == 1


def test_starttls_against_a_plain_server_fails_cleanly(smtp_sink: SmtpSink) -> None:
    error = send_error(make_settings(smtp_port=smtp_sink.port, smtp_starttls=True))
    assert not error.permanent
    assert "STARTTLS" in error.reason or "starttls" in error.reason.lower()
    assert smtp_sink.messages == []


def test_timeout_is_retryable_and_respected() -> None:
    # a TCP listener that accepts and never says hello
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        error = send_error(make_settings(smtp_port=port, send_timeout_s=0.5))
        elapsed = time.monotonic() - started
    assert not error.permanent and "timeout" in error.reason
    assert elapsed < 2
