"""Fixtures of the notifier tests: real receivers on loopback (see tests/support/receivers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.receivers import HttpReceiver, SmtpSink


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink
