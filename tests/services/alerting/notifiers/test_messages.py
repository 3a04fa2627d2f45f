"""The texts: every kind in both languages, readable at a glance, SMS line within 160 chars."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime

import pytest

from tests.services.alerting.notifiers.helpers import make_notification
from vigie_services.alerting.notifiers import KINDS, LANGUAGES, Notification, render
from vigie_services.alerting.notifiers.messages import TEXTS, format_number

HEADLINES = {
    ("fr", "opened"): "alerte ouverte",
    ("fr", "escalated"): "alerte aggravée",
    ("fr", "de-escalated"): "alerte atténuée",
    ("fr", "resolved"): "alerte résolue",
    ("fr", "reminder"): "alerte toujours ouverte",
    ("fr", "test"): "notification de test",
    ("en", "opened"): "alert opened",
    ("en", "escalated"): "alert escalated",
    ("en", "de-escalated"): "alert de-escalated",
    ("en", "resolved"): "alert resolved",
    ("en", "reminder"): "alert still open",
    ("en", "test"): "test notification",
}
ENGLISH_WORDS = re.compile(
    r"\b(alert|asset|value|threshold|observed|since|model|level|previously|above|below|"
    r"details|acknowledg\w*|opened|resolved|reminder|still|the|was)\b",
    re.IGNORECASE,
)


def notification_for(kind: str, language: str) -> Notification:
    resolved = kind == "resolved"
    return make_notification(
        kind=kind,
        language=language,
        level="NORMAL" if resolved else "CRITIQUE",
        previous_level="ALERTE",
        value=91.25 if resolved else 98.3,
        resolved_at=datetime(2026, 5, 1, 12, 0) if resolved else None,
        observed_at=datetime(2026, 5, 1, 12, 0) if resolved else datetime(2026, 5, 1, 10, 0),
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_in_both_languages(kind: str, language: str) -> None:
    n = notification_for(kind, language)
    r = render(n)
    tag = "TEST" if kind == "test" else n.level
    assert r.title == f"[{tag}] transformer-temperature T1: {HEADLINES[language, kind]}"
    value = "98.3" if kind != "resolved" else "91.25"
    if language == "fr":
        value = value.replace(".", ",")
    for expected in (
        f"{value} °C",
        "95 °C",
        "2026-05-01 09:30 UTC",  # open since
        n.message,
        n.model_version,
        n.alert_url,
    ):
        assert expected in r.body, (expected, r.body)
    assert ("2026-05-01 12:00 UTC" if kind == "resolved" else "2026-05-01 10:00 UTC") in r.body
    assert 0 < len(r.short) <= 160
    assert r.short.startswith(r.title)
    assert f"{value} °C" in r.short
    assert "\n" not in r.title and "\n" not in r.short


def test_french_texts_are_french() -> None:
    for kind in KINDS:
        r = render(notification_for(kind, "fr"))
        text = f"{r.title}\n{r.body}\n{r.short}"
        # the service's own sentence and the URL are quoted verbatim: leave them out
        n = notification_for(kind, "fr")
        text = text.replace(n.message, "").replace(n.alert_url, "")
        assert not ENGLISH_WORDS.findall(text), (kind, ENGLISH_WORDS.findall(text), text)
        assert "Valeur : " in r.body and "seuil" in r.body and "Niveau : " in r.body
        assert "Message du service (en anglais) : " in r.body
    opened = render(notification_for("opened", "fr")).body
    assert "Une nouvelle alerte a été ouverte pour l'équipement T1" in opened
    assert "3,3 °C au-dessus" in opened
    assert "Ouverte depuis : 2026-05-01 09:30 UTC (30 min)" in opened
    resolved = render(notification_for("resolved", "fr")).body
    assert "le niveau est revenu à NORMAL" in resolved
    assert "du 2026-05-01 09:30 UTC au 2026-05-01 12:00 UTC (2 h 30 min)" in resolved
    assert "3,75 °C en dessous" in resolved


def test_english_body_explains_level_codes() -> None:
    body = render(notification_for("escalated", "en")).body
    assert "Level: CRITIQUE (critical), previously ALERTE (warning)" in body
    assert "Value: 98.3 °C (threshold 95 °C, 3.3 °C above)" in body
    assert "Observed at: 2026-05-01 10:00 UTC" in body
    assert "Open since: 2026-05-01 09:30 UTC (30 min)" in body
    assert "Details and acknowledgement: http://127.0.0.1:8080/alerting/alerts/12" in body


def test_tables_have_the_same_entries_in_every_language() -> None:
    assert set(TEXTS) == set(LANGUAGES)
    for texts in TEXTS.values():
        assert set(texts.headline) == set(KINDS)
        assert set(texts.what) == set(KINDS)
        assert set(texts.level_gloss) == {"NORMAL", "ALERTE", "CRITIQUE"}
    for f in fields(TEXTS["en"]):
        if isinstance(getattr(TEXTS["en"], f.name), str) and f.name != "decimal_separator":
            assert getattr(TEXTS["en"], f.name) != getattr(TEXTS["fr"], f.name), f.name


def test_missing_value_threshold_and_previous_level() -> None:
    for language, expected in (("en", "Value: not available"), ("fr", "Valeur : non disponible")):
        n = make_notification(
            value=None, threshold=None, unit=None, previous_level=None, language=language
        )
        r = render(n)
        assert expected in r.body
        assert "previously" not in r.body and "auparavant" not in r.body
        assert len(r.short) <= 160
    r = render(make_notification(threshold=None, unit="mg/m3", value=81.2))
    assert "Value: 81.2 mg/m3\n" in r.body


def test_short_drops_details_to_fit_160_characters() -> None:
    long_url = "https://vigie.example.org/alerting/alerts/12?" + "x" * 80
    r = render(make_notification(alert_url=long_url))
    assert len(r.short) <= 160 and "98.3 °C" in r.short and long_url not in r.short
    huge = render(make_notification(service="s" * 120, asset_id="a" * 120))
    assert len(huge.short) == 160 and huge.short.endswith("...")


def test_control_characters_never_reach_title_or_short() -> None:
    r = render(make_notification(asset_id="T1\r\nBcc: evil@example.org", unit="°C\n"))
    assert "\r" not in r.title and "\n" not in r.title and "\n" not in r.short
    assert "T1 Bcc: evil@example.org" in r.title


def test_no_duration_when_the_observation_predates_the_opening() -> None:
    # replayed history: measured in 2015, alert opened today
    n = make_notification(observed_at=datetime(2015, 6, 1, 10, 0))
    assert "Open since: 2026-05-01 09:30 UTC\n" in render(n).body


def test_rendering_is_stable_across_a_json_round_trip() -> None:
    n = notification_for("reminder", "fr")
    assert render(Notification.from_json(n.to_json())) == render(n)


def test_unknown_language_falls_back_to_english() -> None:
    assert render(make_notification(language="de")).title.endswith("alert opened")


@pytest.mark.parametrize(
    ("value", "en", "fr"),
    [
        (98.3, "98.3", "98,3"),
        (95.0, "95", "95"),
        (1234.56, "1234.6", "1234,6"),
        (0.012345, "0.0123", "0,0123"),
        (-3.5, "-3.5", "-3,5"),
        (0.0, "0", "0"),
    ],
)
def test_numbers(value: float, en: str, fr: str) -> None:
    assert format_number(value) == en
    assert format_number(value, ",") == fr
