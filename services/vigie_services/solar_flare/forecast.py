"""What a solar-flare prediction says about one day *d*, from its three probabilities.

:class:`DayForecast` rounds the coherent probabilities of a day (``P(>=C)``, ``P(>=M)``,
``P(X)`` for day *d+1*) to :data:`PROBABILITY_DECIMALS` decimals and builds the prediction item
(class probabilities, most likely class, radio-blackout hint, advice) and the level event's
explanation. The level rule itself is the service's (:func:`~.service.level_rule`), on the
asset's :class:`Thresholds`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from vigie.contract.batch import LevelDetail
from vigie.contract.levels import Level

FEEDBACK_HORIZON = "24h"
PROBABILITY_DECIMALS = 6
UNIT = "probability"
ONE_DAY = timedelta(days=1)
MIDNIGHT = dtime(0, 0)

CLASSES = ("none", "C", "M", "X")
RADIO_BLACKOUT_HINT: dict[str, str] = {"none": "none", "C": "none", "M": "R1-R2", "X": "R3-R5"}
PROBABILITY_FIELDS = {
    "c": "probability_c_or_above",
    "m": "probability_m_or_above",
    "x": "probability_x",
}
ADVICE = {
    Level.NORMAL: "No action: flare risk for tomorrow below the alert thresholds.",
    Level.ALERTE: (
        "Raised risk of an M flare tomorrow (R1-R2 radio blackout on the day side): warn HF "
        "users and plan frequency fall-backs."
    ),
    Level.CRITIQUE: (
        "Risk of an X flare tomorrow (R3 or stronger radio blackout: HF out for up to hours on "
        "the day side, navigation errors): warn operators now and prepare fall-backs."
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """An asset's level thresholds (probabilities 0-1): the model card's, or its overrides."""

    alerte_probability_m_or_above: float
    critique_probability_x: float

    @classmethod
    def of_card(cls, thresholds: dict[str, Any]) -> Thresholds:
        return cls(
            float(thresholds["alerte_probability_m_or_above"]),
            float(thresholds["critique_probability_x"]),
        )

    def overridden(self, overrides: dict[str, float]) -> Thresholds:
        """These thresholds with the ones ``overrides`` sets (field name -> value)."""
        return dataclasses.replace(self, **overrides)


def class_probabilities(p_c: float, p_m: float, p_x: float) -> dict[str, float]:
    """P(peak class of the day) from coherent P(>=C) >= P(>=M) >= P(X)."""
    return {
        "none": round(1.0 - p_c, PROBABILITY_DECIMALS),
        "C": round(p_c - p_m, PROBABILITY_DECIMALS),
        "M": round(p_m - p_x, PROBABILITY_DECIMALS),
        "X": round(p_x, PROBABILITY_DECIMALS),
    }


def most_likely_class(probs: dict[str, float]) -> str:
    """The class of largest probability; ties go to the lower class."""
    best = CLASSES[0]
    for cls in CLASSES[1:]:
        if probs[cls] > probs[best]:
            best = cls
    return best


@dataclass(frozen=True, slots=True)
class DayForecast:
    """The rounded probabilities of day ``day`` (flares on ``day + 1``)."""

    day: date
    c: float
    m: float
    x: float

    @classmethod
    def of(cls, timestamp: datetime, p_c: float, p_m: float, p_x: float) -> DayForecast:
        """``timestamp`` is 00:00Z of day d (aware: the schema makes it so)."""
        return cls(
            timestamp.astimezone(UTC).date(),
            round(p_c, PROBABILITY_DECIMALS),
            round(p_m, PROBABILITY_DECIMALS),
            round(p_x, PROBABILITY_DECIMALS),
        )

    @property
    def forecast_day(self) -> date:
        return self.day + ONE_DAY

    @property
    def target_time(self) -> datetime:
        """00:00Z of day d+1: when the outcome fed back is dated (``POST /v1/feedback``)."""
        return datetime.combine(self.forecast_day, MIDNIGHT, tzinfo=UTC)

    def item(
        self,
        level: Level,
        crossings: list[dict[str, Any]],
        source: str,
        summary: dict[str, Any],
    ) -> dict[str, Any]:
        """The prediction item (the runtime adds ``timestamp`` and ``level``)."""
        classes = class_probabilities(self.c, self.m, self.x)
        likely = most_likely_class(classes)
        return {
            "day": self.day.isoformat(),
            "forecast_day": self.forecast_day.isoformat(),
            "probability_c_or_above": self.c,
            "probability_m_or_above": self.m,
            "probability_x": self.x,
            "class_probabilities": classes,
            "most_likely_class": likely,
            "radio_blackout_hint": RADIO_BLACKOUT_HINT[likely],
            "crossings": crossings,
            "advice": ADVICE[level],
            "source": source,
            "summary": summary,
        }

    def detail(self, level: Level, th: Thresholds) -> LevelDetail:
        """Why the day has ``level`` (the level event's value, threshold and message)."""
        t_m, t_x = th.alerte_probability_m_or_above, th.critique_probability_x
        on = self.forecast_day.isoformat()
        if level is Level.CRITIQUE:
            return LevelDetail(
                self.x, UNIT, t_x,
                f"P(X flare on {on}) = {self.x:.3f} reaches CRITIQUE threshold {t_x:.3f} "
                "(X1 = R3 radio blackout)",
            )  # fmt: skip
        if level is Level.ALERTE:
            return LevelDetail(
                self.m, UNIT, t_m,
                f"P(>=M flare on {on}) = {self.m:.3f} reaches ALERTE threshold {t_m:.3f} "
                f"(M1 = R1 radio blackout); P(X) {self.x:.3f} below {t_x:.3f}",
            )  # fmt: skip
        return LevelDetail(
            self.m, UNIT, t_m,
            f"P(>=M flare on {on}) = {self.m:.3f} below ALERTE threshold {t_m:.3f}; "
            f"P(X) {self.x:.3f} below CRITIQUE threshold {t_x:.3f}",
        )  # fmt: skip
