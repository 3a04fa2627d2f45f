"""Target validation (used by the subscriber API for 422s) and the channel registry."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.services.alerting.notifiers.helpers import make_settings
from vigie_services.alerting.notifiers import (
    CHANNELS,
    EmailNotifier,
    PushNotifier,
    SmsNotifier,
    WebhookNotifier,
    build_notifiers,
    validate_target,
)

GOOD = [
    ("email", "oncall@example.org"),
    ("email", "ops+vigie@plant-3.example.co.uk"),
    ("email", "ops@localhost"),
    ("webhook", "https://hooks.example.org/vigie?token=abc"),
    ("webhook", "http://127.0.0.1:9000/hook"),
    ("push", "vigie-transformers_T1"),
    ("push", "https://ntfy.example.org/vigie-alerts"),
    ("sms", "+33612345678"),
    ("sms", "+14155550123"),
]
BAD = [
    ("email", "oncall"),
    ("email", "Ops <oncall@example.org>"),
    ("email", "on call@example.org"),
    ("email", "oncall@example.org\r\nBcc: x@example.org"),
    ("email", "oncall@@example.org"),
    ("email", "oncall@-example.org"),
    ("webhook", "ftp://example.org/hook"),
    ("webhook", "hooks.example.org/vigie"),
    ("webhook", "http:///nohost"),
    ("push", "topic with spaces"),
    ("push", "x" * 65),
    ("push", "https://ntfy.example.org/"),
    ("push", "ftp://ntfy.example.org/topic"),
    ("sms", "0612345678"),
    ("sms", "+33 6 12 34 56 78"),
    ("sms", "+1234567"),
    ("sms", "+1234567890123456"),
    ("email", ""),
    ("webhook", "https://example.org/" + "a" * 600),
    ("carrier-pigeon", "anything"),
]


@pytest.mark.parametrize(("channel", "target"), GOOD)
def test_good_targets(channel: str, target: str) -> None:
    assert validate_target(channel, target) is None


@pytest.mark.parametrize(("channel", "target"), BAD)
def test_bad_targets_get_a_message(channel: str, target: str) -> None:
    error = validate_target(channel, target)
    assert isinstance(error, str) and error


def test_build_notifiers_has_one_per_channel() -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            notifiers = build_notifiers(make_settings(), client)
            assert tuple(notifiers) == CHANNELS
            assert isinstance(notifiers["email"], EmailNotifier)
            assert isinstance(notifiers["webhook"], WebhookNotifier)
            assert isinstance(notifiers["push"], PushNotifier)
            assert isinstance(notifiers["sms"], SmsNotifier)
            for channel, notifier in notifiers.items():
                assert notifier.channel == channel

    asyncio.run(go())
