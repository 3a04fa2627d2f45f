"""solar-flare: tomorrow's flare risk for a space-weather desk (radio blackouts, HF links).

One request = one asset (the desk's feed name, e.g. ``SUN``; any valid asset id) and a batch of
UTC days, each forecast on its own: one prediction per day, in the order given.

**Input per day** (``timestamp`` = 00:00Z of the UTC day *d*), exactly one of:

* ``summary``: the summary columns of ``daily_train.csv`` for day *d* (flare counts today and over
  the last 3 / 7 / 27 days, largest peak fluxes, sunspot numbers, days since the last >=M / X
  flare; units in the field descriptions). ``sunspot_number_std`` and ``sunspot_n_obs`` are
  optional and not used by the model.
* ``raw``: the raw material the summary comes from: every GOES flare (class A-X) that peaked on
  *d-26 … d* (UTC dates) with its class string (``M2.3``, ``X1.0``, ``C5``) and peak time, and the
  **27** daily sunspot numbers of *d-26 … d*, oldest first (exactly 27: the 27-day mean needs
  them all). The service derives the summary with the function training data is defined by
  (``summary.summary_from_raw``), then both paths share one feature function
  (``features.features``), so equivalent inputs give the same probabilities. From raw, the days
  since the last >=M / X flare saturate at 27 ("27 or more"); the model clips them at 27 anyway.

**Output per day**: calibrated probabilities of at least one flare >=C, >=M and X on day *d+1*
(00:00-24:00 UTC), made coherent (``P(X) <= P(>=M) <= P(>=C)``); the probabilities of the day's
peak class (``none`` = 1 - P(>=C), ``C`` = P(>=C) - P(>=M), ``M`` = P(>=M) - P(X), ``X`` = P(X));
``most_likely_class``, the largest of those four (ties go to the lower class); and
``radio_blackout_hint``, the NOAA radio-blackout scales that class can reach: ``none`` for none/C
(below R1), ``R1-R2`` for M (M1 = R1 minor, M5 = R2 moderate), ``R3-R5`` for X (X1 = R3 strong,
X10 = R4 severe, X20 = R5 extreme). The class is a peak class, not a magnitude, hence a range.
P(>=R1) is P(>=M) and P(>=R3) is P(X).

**Levels** (thresholds in the model card, probabilities 0-1): CRITIQUE when P(X) >=
``critique_probability_x`` (the max-HSS threshold of P(X) on validation: X days are rare, and
max TSS would flag about a third of active days), else ALERTE when P(>=M) >=
``alerte_probability_m_or_above`` (the max-TSS threshold of P(>=M) on validation), else NORMAL.
``crossings`` says which probability crossed which threshold. Override per asset with
``VIGIE_ASSET_CONFIG`` (either key may be omitted: the card's threshold then applies)::

    {"solar-flare": {"SUN": {"alerte_probability_m_or_above": 0.3,
                             "critique_probability_x": 0.2}}}

**Feedback**: target ``flare_M_or_above_next_24h``, value 1 if a flare >=M1.0 peaked on day
*d+1*, else 0, with the timestamp 00:00Z of day *d+1*. It is matched to P(>=M) of the prediction
for day *d* (horizon ``24h``), and the live MAE is the mean of |outcome - P(>=M)|, an absolute
Brier-like error (0 is perfect; climatology at a 17 % base rate scores about 0.28).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from vigie.contract.batch import Batch, Outputs, Points, Scores
from vigie.contract.levels import Level
from vigie.contract.replay import ReplayRequest
from vigie.contract.service import PredictionService, Progress, StrictModel, Target, TrainedModel
from vigie.models.store import LoadedModel
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import metrics, replay, training
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.consistency import check_days
from vigie_services.solar_flare.forecast import (
    FEEDBACK_HORIZON,
    PROBABILITY_FIELDS,
    DayForecast,
    Thresholds,
)
from vigie_services.solar_flare.measurement import DailySummary, FlareDay
from vigie_services.solar_flare.replay import REPLAY_ASSET

__all__ = ["REPLAY_ASSET", "DailySummary", "FlareDay", "SolarFlareService", "level_rule"]


class Crossing(BaseModel):
    probability: str = Field(description="which probability crossed")
    value: float
    threshold: float
    level: Level


class FlarePrediction(BaseModel):
    timestamp: datetime = Field(description="00:00Z of day d, the day forecast from")
    level: Level
    day: date = Field(description="UTC day d")
    forecast_day: date = Field(description="UTC day d+1 the probabilities are about")
    probability_c_or_above: float = Field(description="P(at least one flare >=C1.0 on d+1)")
    probability_m_or_above: float = Field(description="P(at least one flare >=M1.0 on d+1)")
    probability_x: float = Field(description="P(at least one X flare on d+1)")
    class_probabilities: dict[str, float] = Field(
        description="P(peak class of d+1 is none / C / M / X)"
    )
    most_likely_class: Literal["none", "C", "M", "X"]
    radio_blackout_hint: Literal["none", "R1-R2", "R3-R5"] = Field(
        description="NOAA R scales the most likely class can reach"
    )
    crossings: list[Crossing] = Field(description="which probability crossed which threshold")
    advice: str
    source: Literal["summary", "raw"] = Field(description="what the request gave for the day")
    summary: dict[str, Any] = Field(description="the summary the model used (derived from raw)")


class AssetSettings(StrictModel):
    """One asset's thresholds; an unset one is the model card's."""

    alerte_probability_m_or_above: float | None = Field(
        default=None, gt=0, le=1, description="ALERTE at or above [probability]"
    )
    critique_probability_x: float | None = Field(
        default=None, gt=0, le=1, description="CRITIQUE at or above [probability]"
    )


# ----------------------------------------------------------------------------- the level rule


def level_rule(p_m: float, p_x: float, th: Thresholds) -> tuple[Level, list[dict[str, Any]]]:
    """CRITIQUE when P(X) >= its threshold, else ALERTE when P(>=M) >= its threshold.

    Returns the level and every crossing (both when both probabilities are at or above).
    """
    crossings: list[dict[str, Any]] = []
    level = Level.NORMAL
    if p_m >= th.alerte_probability_m_or_above:
        crossings.append(
            {"probability": PROBABILITY_FIELDS["m"], "value": p_m,
             "threshold": th.alerte_probability_m_or_above, "level": Level.ALERTE}
        )  # fmt: skip
        level = Level.ALERTE
    if p_x >= th.critique_probability_x:
        crossings.append(
            {"probability": PROBABILITY_FIELDS["x"], "value": p_x,
             "threshold": th.critique_probability_x, "level": Level.CRITIQUE}
        )  # fmt: skip
        level = Level.CRITIQUE
    return level, crossings


# ---------------------------------------------------------------------------------- service


class SolarFlareService(PredictionService[FlareDay, AssetSettings]):
    name = "solar-flare"
    title = "Solar flare risk for tomorrow"
    description = __doc__ or ""
    Measurement = FlareDay
    Prediction = FlarePrediction
    AssetSettings = AssetSettings
    target = Target(
        sm.TARGETS["m"],
        "0/1",
        "1 if at least one flare >=M1.0 peaked on day d+1 (timestamp 00:00Z of d+1), else 0",
        allowed=frozenset({0.0, 1.0}),
    )
    # A day's probabilities depend on its own summary only: the asset's thresholds are applied
    # in present, so the runtime may score several calls' days in one model call.
    rows_independent = True
    replay_batch = 30  # days per request
    #: the card's thresholds, and every configured asset's, resolved when a model is bound
    default_thresholds: Thresholds | None = None
    asset_thresholds: dict[str, Thresholds] = {}

    def bind(self, loaded: LoadedModel) -> None:
        card = Thresholds.of_card(loaded.card.thresholds)
        self.asset_thresholds = {
            asset: card.overridden(settings.model_dump(exclude_none=True))
            for asset, settings in self.assets.items()
        }
        self.default_thresholds = card
        super().bind(loaded)

    def thresholds_for(self, asset_id: str) -> Thresholds:
        if self.default_thresholds is None:
            raise RuntimeError("no model bound")
        return self.asset_thresholds.get(asset_id, self.default_thresholds)

    # -- scoring ----------------------------------------------------------------------------
    def check(self, batch: Batch[FlareDay]) -> None:
        check_days(batch.rows)

    def infer(self, batch: Batch[FlareDay]) -> Outputs:
        values = sm.inputs_matrix([day.model_summary() for day in batch.rows])
        return md.probabilities(self.model.model, ft.features_matrix(values))

    def present(self, batch: Batch[FlareDay], outputs: Outputs) -> Scores:
        th = self.thresholds_for(batch.asset_id)
        p_c, p_m, p_x = (outputs[k].tolist() for k in md.KEYS)
        days = [DayForecast.of(*p) for p in zip(batch.times, p_c, p_m, p_x, strict=True)]
        levels: list[Level] = []
        items: list[dict[str, Any]] = []
        for row, day in zip(batch.rows, days, strict=True):
            level, crossings = level_rule(day.m, day.x, th)
            source = "summary" if row.summary is not None else "raw"
            levels.append(level)
            items.append(day.item(level, crossings, source, row.model_summary()))
        return Scores(
            levels=levels,
            items=items,
            explain=lambda i: days[i].detail(levels[i], th),
            points=Points.one_per_row(
                self.target.name,
                FEEDBACK_HORIZON,
                [d.target_time for d in days],  # P(>=M) of d, observed on d+1
                [d.m for d in days],
            ),
        )

    # -- the vigie command ------------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        return training.train(data_dir, self.target.name, progress)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """design.md section 7 metrics on a CSV with the columns of ``daily_train.csv``.

        ``asset`` is not used: the model is the same for every feed.
        """
        return metrics.evaluate(model, sm.load_table(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """One ``summary`` day per row of a ``daily_train.csv``-shaped file, in date order,
        ``batch`` days per request (see :mod:`.replay`). Default asset: ``SUN``."""
        return replay.replay_requests(data, asset, batch)
