"""What a notification says, in French or English: one title, one body, one SMS-sized line.

All wording lives in :data:`TEXTS`, one :class:`Texts` table per language with the same fields;
the layout logic below is written once and only picks strings from the table. The output depends
on the :class:`Notification` alone (never on the current time), so a retry days later renders
exactly the same text as the first attempt.

Conventions:

* times are shown in UTC as ``YYYY-MM-DD HH:MM UTC`` in both languages (naive datetimes are
  UTC, as everywhere in alerting);
* numbers use a decimal point in English and a decimal comma in French, without thousands
  separators;
* level codes (``NORMAL``, ``ALERTE``, ``CRITIQUE``) are kept as they are (they are what the
  dashboards and APIs show); the English text adds a gloss: ``CRITIQUE (critical)``;
* the ``test`` kind is tagged ``[TEST]`` instead of the level so that nobody mistakes it for a
  real alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from vigie_services.alerting.notifiers.base import LANGUAGES, Notification

KINDS = ("opened", "escalated", "de-escalated", "resolved", "reminder", "test")
SHORT_MAX = 160


@dataclass(frozen=True)
class Rendered:
    """The texts of one notification: ``title`` (subject / push title), ``body`` (plain text,
    several lines) and ``short`` (one line of at most 160 characters, for SMS)."""

    title: str
    body: str
    short: str


@dataclass(frozen=True)
class Texts:
    """Every string of one language. Placeholders are ``str.format`` fields."""

    headline: Mapping[str, str]  # per kind, in the title: "alert opened"
    what: Mapping[str, str]  # per kind, first sentence of the body; {asset} {service}
    level_gloss: Mapping[str, str]  # level code -> word in this language ("" = none)
    level_line: str  # {level}
    level_previous_line: str  # {level} {previous}
    value_line: str  # {value}
    value_unavailable: str
    threshold_part: str  # {threshold} {relation}
    above: str  # {diff}
    below: str  # {diff}
    at_threshold: str
    observed_line: str  # {observed}
    service_message_line: str  # {message}
    open_since_line: str  # {opened} {duration}
    open_span_line: str  # {opened} {resolved} {duration}
    model_line: str  # {model_version}
    link_line: str  # {url}
    footer: str  # {alert_id} {delivery_id}
    short_value: str  # {value} {threshold}: value part of the SMS
    decimal_separator: str
    day_unit: str
    under_a_minute: str


TEXTS: dict[str, Texts] = {
    "en": Texts(
        headline={
            "opened": "alert opened",
            "escalated": "alert escalated",
            "de-escalated": "alert de-escalated",
            "resolved": "alert resolved",
            "reminder": "alert still open",
            "test": "test notification",
        },
        what={
            "opened": "A new alert was opened for asset {asset} (service {service}).",
            "escalated": "The alert for asset {asset} (service {service}) got worse.",
            "de-escalated": (
                "The alert for asset {asset} (service {service}) eased but is still open."
            ),
            "resolved": (
                "The alert for asset {asset} (service {service}) is resolved: "
                "the level is back to NORMAL."
            ),
            "reminder": (
                "Reminder: the alert for asset {asset} (service {service}) is still open "
                "and has not been acknowledged."
            ),
            "test": (
                "This is a test notification from Vigie for asset {asset} "
                "(service {service}). No action is needed."
            ),
        },
        level_gloss={"NORMAL": "normal", "ALERTE": "warning", "CRITIQUE": "critical"},
        level_line="Level: {level}",
        level_previous_line="Level: {level}, previously {previous}",
        value_line="Value: {value}",
        value_unavailable="not available",
        threshold_part=" (threshold {threshold}, {relation})",
        above="{diff} above",
        below="{diff} below",
        at_threshold="exactly at the threshold",
        observed_line="Observed at: {observed}",
        service_message_line="Service message: {message}",
        open_since_line="Open since: {opened}{duration}",
        open_span_line="Was open: from {opened} to {resolved}{duration}",
        model_line="Model version: {model_version}",
        link_line="Details and acknowledgement: {url}",
        footer="Vigie - alert #{alert_id}, notification #{delivery_id}",
        short_value="{value} (threshold {threshold})",
        decimal_separator=".",
        day_unit="d",
        under_a_minute="under a minute",
    ),
    "fr": Texts(
        headline={
            "opened": "alerte ouverte",
            "escalated": "alerte aggravée",
            "de-escalated": "alerte atténuée",
            "resolved": "alerte résolue",
            "reminder": "alerte toujours ouverte",
            "test": "notification de test",
        },
        what={
            "opened": (
                "Une nouvelle alerte a été ouverte pour l'équipement {asset} (service {service})."
            ),
            "escalated": "L'alerte de l'équipement {asset} (service {service}) s'est aggravée.",
            "de-escalated": (
                "L'alerte de l'équipement {asset} (service {service}) s'est atténuée "
                "mais reste ouverte."
            ),
            "resolved": (
                "L'alerte de l'équipement {asset} (service {service}) est résolue : "
                "le niveau est revenu à NORMAL."
            ),
            "reminder": (
                "Rappel : l'alerte de l'équipement {asset} (service {service}) est toujours "
                "ouverte et n'a pas été acquittée."
            ),
            "test": (
                "Ceci est une notification de test de Vigie pour l'équipement {asset} "
                "(service {service}). Aucune action n'est nécessaire."
            ),
        },
        level_gloss={"NORMAL": "", "ALERTE": "", "CRITIQUE": ""},
        level_line="Niveau : {level}",
        level_previous_line="Niveau : {level}, auparavant {previous}",
        value_line="Valeur : {value}",
        value_unavailable="non disponible",
        threshold_part=" (seuil {threshold}, {relation})",
        above="{diff} au-dessus",
        below="{diff} en dessous",
        at_threshold="exactement au seuil",
        observed_line="Observation : {observed}",
        service_message_line="Message du service (en anglais) : {message}",
        open_since_line="Ouverte depuis : {opened}{duration}",
        open_span_line="A été ouverte : du {opened} au {resolved}{duration}",
        model_line="Version du modèle : {model_version}",
        link_line="Détails et acquittement : {url}",
        footer="Vigie - alerte n° {alert_id}, notification n° {delivery_id}",
        short_value="{value} (seuil {threshold})",
        decimal_separator=",",
        day_unit="j",
        under_a_minute="moins d'une minute",
    ),
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_FALLBACK_KIND = "reminder"


def render(n: Notification) -> Rendered:
    """The title, body and SMS line of ``n`` in ``n.language`` (English if unknown)."""
    texts = TEXTS[n.language if n.language in LANGUAGES else "en"]
    kind = n.kind if n.kind in KINDS else _FALLBACK_KIND
    service, asset = one_line(n.service), one_line(n.asset_id)
    url = one_line(n.alert_url)

    tag = "TEST" if kind == "test" else one_line(n.level)
    title = f"[{tag}] {service} {asset}: {texts.headline[kind]}"

    value = _quantity(n.value, n.unit, texts) if n.value is not None else None
    threshold = _quantity(n.threshold, n.unit, texts) if n.threshold is not None else None
    observed = format_time(n.observed_at)

    lines = [texts.what[kind].format(asset=asset, service=service), ""]
    level = _level(n.level, texts)
    if n.previous_level:
        previous = _level(n.previous_level, texts)
        lines.append(texts.level_previous_line.format(level=level, previous=previous))
    else:
        lines.append(texts.level_line.format(level=level))
    value_text = value if value is not None else texts.value_unavailable
    if value is not None and threshold is not None:
        value_text += texts.threshold_part.format(threshold=threshold, relation=_relation(n, texts))
    lines.append(texts.value_line.format(value=value_text))
    lines.append(texts.observed_line.format(observed=observed))
    if n.message.strip():
        lines.append(texts.service_message_line.format(message=one_line(n.message)))
    lines.append(_open_line(n, texts))
    lines.append(texts.model_line.format(model_version=one_line(n.model_version)))
    lines += ["", texts.link_line.format(url=url), ""]
    lines.append(texts.footer.format(alert_id=n.alert_id, delivery_id=n.delivery_id))
    body = "\n".join(lines) + "\n"

    value_short = ""
    if value is not None:
        value_short = (
            texts.short_value.format(value=value, threshold=threshold)
            if threshold is not None
            else value
        )
    return Rendered(title=title, body=body, short=_short(title, value_short, observed, url))


def one_line(text: str) -> str:
    """``text`` without line breaks or control characters (safe in headers and titles)."""
    return _CONTROL.sub(" ", text).strip()


def format_time(moment: datetime) -> str:
    """``2026-05-01 10:00 UTC`` (naive datetimes are taken as UTC)."""
    return f"{as_utc(moment):%Y-%m-%d %H:%M} UTC"


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_number(value: float, decimal_separator: str = ".") -> str:
    """A short, readable number: 98.3, 1234.5, 0.0123; trailing zeros dropped."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(".", decimal_separator)


def format_duration(seconds: float, texts: Texts) -> str:
    """``3 j 4 h`` / ``2 h 30 min`` / ``45 min``."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return texts.under_a_minute
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} {texts.day_unit} {hours} h" if hours else f"{days} {texts.day_unit}"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _quantity(value: float, unit: str | None, texts: Texts) -> str:
    number = format_number(value, texts.decimal_separator)
    return f"{number} {one_line(unit)}" if unit and unit.strip() else number


def _level(code: str, texts: Texts) -> str:
    gloss = texts.level_gloss.get(code, "")
    return f"{code} ({gloss})" if gloss else code


def _relation(n: Notification, texts: Texts) -> str:
    assert n.value is not None and n.threshold is not None
    diff = n.value - n.threshold
    if diff == 0:
        return texts.at_threshold
    template = texts.above if diff > 0 else texts.below
    return template.format(diff=_quantity(abs(diff), n.unit, texts))


def _open_line(n: Notification, texts: Texts) -> str:
    """Since when the alert is open; its duration only when the clocks make it meaningful.

    The duration of an open alert is measured up to the observation it reports (not "now", so
    the text does not depend on when it is sent) and left out when that observation is older
    than the opening (replayed historical data).
    """
    opened = as_utc(n.opened_at)
    if n.kind == "resolved" and n.resolved_at is not None:
        resolved = as_utc(n.resolved_at)
        duration = _duration_suffix(opened, resolved, texts)
        return texts.open_span_line.format(
            opened=format_time(opened), resolved=format_time(resolved), duration=duration
        )
    duration = _duration_suffix(opened, as_utc(n.observed_at), texts)
    return texts.open_since_line.format(opened=format_time(opened), duration=duration)


def _duration_suffix(start: datetime, end: datetime, texts: Texts) -> str:
    seconds = (end - start).total_seconds()
    return f" ({format_duration(seconds, texts)})" if seconds >= 0 else ""


def _short(title: str, value: str, observed: str, url: str) -> str:
    """The longest of the candidate SMS lines that fits in 160 characters."""
    head = f"{title}."
    candidates = []
    if value:
        candidates += [
            f"{head} {value}, {observed}. {url}",
            f"{head} {value}. {url}",
            f"{head} {value}, {observed}.",
            f"{head} {value}.",
        ]
    else:
        candidates += [f"{head} {observed}. {url}", f"{head} {url}", f"{head} {observed}."]
    candidates.append(head)
    for candidate in candidates:
        if len(candidate) <= SHORT_MAX:
            return candidate
    return candidates[-1][: SHORT_MAX - 3].rstrip() + "..."
