"""E-mail channel: one plain-text message per notification, sent with aiosmtplib.

Headers: ``From`` = ``smtp_from``, ``To`` = the target, ``Subject`` = the rendered title,
``Message-ID: <vigie-delivery-{delivery_id}@{domain of smtp_from}>`` (identical on every retry of
one delivery, so a duplicate is easy to spot and mail clients drop it), ``References:
<vigie-alert-{alert_id}@...>`` (clients thread all notifications of one alert),
``X-Vigie-Alert-Id``, ``X-Vigie-Delivery-Id``, ``X-Vigie-Level``, ``X-Vigie-Kind``,
``Auto-Submitted: auto-generated`` (no auto-replies), ``Content-Language``, and for CRITIQUE
``Importance: high`` / ``X-Priority: 1``.

Failures, by SMTP semantics:

* no connection, timeout, disconnect, TLS failure, any 4xx reply: retryable;
* 5xx reply to RCPT (recipient refused, e.g. 550) or to DATA (message refused): permanent;
* 5xx replies about *our* side (EHLO, MAIL FROM, AUTH, STARTTLS not offered): retryable: they
  come from the relay's configuration, not from this message, and every notification would be
  lost while it is being fixed. They end as "dead" after ``max_attempts`` anyway.
"""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import ClassVar

import aiosmtplib

from vigie_services.alerting.notifiers.base import DeliveryError, Notification
from vigie_services.alerting.notifiers.messages import render
from vigie_services.alerting.notifiers.targets import validate_email
from vigie_services.alerting.settings import AlertingSettings


def sender_address(smtp_from: str) -> str:
    """The bare address of ``smtp_from`` (which may be ``Vigie <vigie@example.org>``)."""
    return parseaddr(smtp_from)[1] or smtp_from


def message_domain(smtp_from: str) -> str:
    """The domain used in Message-ID and References."""
    domain = sender_address(smtp_from).rpartition("@")[2]
    return domain or "vigie.localhost"


def build_message(n: Notification, *, smtp_from: str, to: str) -> EmailMessage:
    """The e-mail of ``n`` for ``to`` (plain text, UTF-8)."""
    rendered = render(n)
    domain = message_domain(smtp_from)
    message = EmailMessage()
    message["From"] = smtp_from
    message["To"] = to
    message["Subject"] = rendered.title
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<vigie-delivery-{n.delivery_id}@{domain}>"
    message["References"] = f"<vigie-alert-{n.alert_id}@{domain}>"
    message["X-Vigie-Alert-Id"] = str(n.alert_id)
    message["X-Vigie-Delivery-Id"] = str(n.delivery_id)
    message["X-Vigie-Level"] = n.level
    message["X-Vigie-Kind"] = n.kind
    message["Auto-Submitted"] = "auto-generated"
    if n.level == "CRITIQUE" and n.kind not in ("resolved", "test"):
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    message.set_content(rendered.body)  # (clears Content-* headers: set them after)
    message["Content-Language"] = n.language
    return message


def _smtp_reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"[:300]


class EmailNotifier:
    """Sends through the SMTP relay of the settings.

    ``tls_context`` (optional) replaces the default verification context for STARTTLS, e.g. to
    trust a private CA.
    """

    channel: ClassVar[str] = "email"

    def __init__(
        self, settings: AlertingSettings, *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self.tls_context = tls_context

    async def send(self, notification: Notification, target: str) -> None:
        error = validate_email(target)
        if error is not None:
            raise DeliveryError(f"bad e-mail address: {error}", permanent=True)
        s = self.settings
        message = build_message(notification, smtp_from=s.smtp_from, to=target)
        password = s.smtp_password.get_secret_value() if s.smtp_password is not None else None
        relay = f"SMTP {s.smtp_host}:{s.smtp_port}"
        try:
            async with asyncio.timeout(s.send_timeout_s):
                await aiosmtplib.send(
                    message,
                    sender=sender_address(s.smtp_from),
                    recipients=[target],
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    start_tls=s.smtp_starttls,
                    username=s.smtp_username or None,
                    password=password if s.smtp_username else None,
                    timeout=s.send_timeout_s,
                    tls_context=self.tls_context,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(_smtp_reply(r) for r in exc.recipients)
            permanent = bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
            raise DeliveryError(
                f"{relay} refused recipient {target}: {replies}", permanent=permanent
            ) from None
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise DeliveryError(
                f"{relay} refused recipient {target}: {_smtp_reply(exc)}",
                permanent=exc.code >= 500,
            ) from None
        except aiosmtplib.SMTPDataError as exc:
            raise DeliveryError(
                f"{relay} refused the message: {_smtp_reply(exc)}", permanent=exc.code >= 500
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{relay} refused the login: {_smtp_reply(exc)}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{relay} replied {_smtp_reply(exc)}") from None
        except TimeoutError:  # aiosmtplib's own timeouts are TimeoutErrors too
            raise DeliveryError(f"{relay}: timeout after {s.send_timeout_s:g} s") from None
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"{relay}: {exc.message}") from None
        except OSError as exc:  # refused, unreachable, TLS errors (ssl.SSLError)
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"{relay}: cannot connect: {detail}") from None
