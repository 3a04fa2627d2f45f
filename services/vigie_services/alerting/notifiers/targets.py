"""What a subscriber's ``target`` must look like, per channel.

Each validator returns an error message (English, shown by the subscriber API in a 422) or
``None`` when the target is acceptable. The notifiers run the same checks before sending and turn
an error into a permanent :class:`~vigie_services.alerting.notifiers.base.DeliveryError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from vigie_services.alerting.notifiers.base import CHANNELS

MAX_TARGET_LENGTH = 512  # the width of ``subscribers.target``

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})*")
PHONE_RE = re.compile(r"\+[0-9]{8,15}")
TOPIC_RE = re.compile(r"[-_A-Za-z0-9]{1,64}")


def validate_email(target: str) -> str | None:
    """A plain ASCII address ``local@domain`` (no display name; ``ops@localhost`` is fine)."""
    if len(target) > 254 or not EMAIL_RE.fullmatch(target):
        return "must be a plain e-mail address such as oncall@example.org"
    if ".." in target.split("@", 1)[0] or target.startswith(".") or ".@" in target:
        return "must be a plain e-mail address such as oncall@example.org"
    return None


def validate_http_url(target: str) -> str | None:
    """An absolute ``http://`` or ``https://`` URL with a host."""
    try:
        url = httpx.URL(target)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "must be an http:// or https:// URL"
    if url.scheme not in ("http", "https") or not url.host:
        return "must be an http:// or https:// URL"
    if any(ch.isspace() for ch in target):
        return "must be a URL without spaces"
    return None


def validate_push(target: str) -> str | None:
    """An ntfy topic (1-64 of ``A-Z a-z 0-9 _ -``), or the http(s) URL of a topic."""
    if TOPIC_RE.fullmatch(target):
        return None
    if target.startswith(("http://", "https://")):
        error = validate_http_url(target)
        if error is not None:
            return error
        topic = httpx.URL(target).path.rstrip("/").rsplit("/", 1)[-1]
        if TOPIC_RE.fullmatch(topic):
            return None
        return "the URL must end with an ntfy topic (1-64 of A-Z a-z 0-9 _ -)"
    return "must be an ntfy topic (1-64 of A-Z a-z 0-9 _ -) or the http(s) URL of a topic"


def validate_phone(target: str) -> str | None:
    """E.164: ``+`` then 8 to 15 digits, nothing else."""
    if PHONE_RE.fullmatch(target):
        return None
    return "must be a phone number in E.164 form: + then 8-15 digits, e.g. +33612345678"


VALIDATORS: dict[str, Callable[[str], str | None]] = {
    "email": validate_email,
    "webhook": validate_http_url,
    "push": validate_push,
    "sms": validate_phone,
}
assert set(VALIDATORS) == set(CHANNELS)


def validate_target(channel: str, target: str) -> str | None:
    """Error message for a bad ``target`` of ``channel`` (or an unknown channel), else None."""
    validator = VALIDATORS.get(channel)
    if validator is None:
        return f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}"
    if not target:
        return "must not be empty"
    if len(target) > MAX_TARGET_LENGTH:
        return f"must be at most {MAX_TARGET_LENGTH} characters"
    return validator(target)
