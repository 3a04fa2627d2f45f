"""transformer-temperature: top-oil temperature forecasts of transformers, 1 h, 6 h, 24 h ahead.

A request carries one transformer's recent hourly measurements (loads and OT), oldest first, one
per hour without gaps. Every measurement that has ``HISTORY_HOURS`` hours of history in the request
(itself included) is a forecast origin and gets one prediction; the earlier ones are history only.
So a SCADA that posts the last ``HISTORY_HOURS`` hours gets exactly one forecast, for the latest
hour, and a backfill of ``HISTORY_HOURS + k - 1`` hours gets ``k``.

Level rule (per asset, °C): a horizon is CRITIQUE when its forecast reaches ``critique_c``,
ALERTE when it reaches ``alerte_c``; the prediction takes its worst horizon. Defaults come from
each transformer's training distribution (stored in the model card); override or add assets with
``VIGIE_ASSET_CONFIG`` (both thresholds, ``critique_c`` above ``alerte_c``)::

    {"transformer-temperature": {"T1": {"alerte_c": 75.0, "critique_c": 90.0}}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, model_validator

from vigie.contract.batch import Batch, LevelDetail, Outputs, Points, Scores
from vigie.contract.errors import Unprocessable, field_error
from vigie.contract.levels import Level
from vigie.contract.replay import ReplayRequest
from vigie.contract.service import (
    MeasurementBase,
    PredictionService,
    Progress,
    StrictModel,
    Target,
    TrainedModel,
)
from vigie.contract.window import Window
from vigie.models.store import LoadedModel
from vigie_services.transformer_temperature import replay, training
from vigie_services.transformer_temperature.data import load_series
from vigie_services.transformer_temperature.evaluation import evaluate
from vigie_services.transformer_temperature.features import COLUMNS, HISTORY_HOURS, HORIZONS
from vigie_services.transformer_temperature.forecasting import forecast_rows

LOAD_DOC = (
    "(MW-scale as published by the ETT data set, whose authors state no unit; may be negative)"
)

RECOMMENDATIONS = {
    Level.NORMAL: "No action: oil temperature forecast within the normal range.",
    Level.ALERTE: (
        "Check the cooling (fans, pumps, radiators) and the oil level; consider shedding or "
        "transferring load and watch the trend until it falls back."
    ),
    Level.CRITIQUE: (
        "Reduce the load now and dispatch a crew: sustained top-oil temperature at this level "
        "ages the insulation fast; verify cooling and prepare to de-energise per site procedure."
    ),
}


class TransformerMeasurement(MeasurementBase):
    """One hourly measurement of a transformer."""

    HUFL: float = Field(ge=-1000, le=1000, description=f"High UseFul Load {LOAD_DOC}")
    HULL: float = Field(ge=-1000, le=1000, description=f"High UseLess Load {LOAD_DOC}")
    MUFL: float = Field(ge=-1000, le=1000, description=f"Middle UseFul Load {LOAD_DOC}")
    MULL: float = Field(ge=-1000, le=1000, description=f"Middle UseLess Load {LOAD_DOC}")
    LUFL: float = Field(ge=-1000, le=1000, description=f"Low UseFul Load {LOAD_DOC}")
    LULL: float = Field(ge=-1000, le=1000, description=f"Low UseLess Load {LOAD_DOC}")
    OT: float = Field(ge=-60, le=200, description="top-oil temperature, °C")


class HorizonForecast(BaseModel):
    horizon: str = Field(description="h<N>: N hours after the origin")
    target_time: datetime
    oil_temperature_c: float = Field(description="forecast top-oil temperature, °C")
    level: Level


class Crossing(BaseModel):
    horizon: str
    level: Level
    threshold_c: float
    forecast_c: float


class OilTemperaturePrediction(BaseModel):
    timestamp: datetime = Field(description="forecast origin: the measurement forecast from")
    level: Level
    forecasts: list[HorizonForecast]
    crossings: list[Crossing] = Field(description="which horizon crossed which threshold")
    recommendation: str


class AssetThresholds(StrictModel):
    """One transformer's level thresholds (the ``AssetSettings`` of the service)."""

    alerte_c: float = Field(ge=-60, le=200, description="ALERTE at or above, °C")
    critique_c: float = Field(ge=-60, le=200, description="CRITIQUE at or above, °C")

    @model_validator(mode="after")
    def _ordered(self) -> AssetThresholds:
        if self.critique_c <= self.alerte_c:
            raise ValueError("critique_c must be above alerte_c")
        return self


LEVELS = (Level.NORMAL, Level.ALERTE, Level.CRITIQUE)  # by rank
HORIZON_NAMES: tuple[str, ...] = tuple(f"h{h}" for h in HORIZONS)
_HORIZON_DELTAS: tuple[timedelta, ...] = tuple(timedelta(hours=h) for h in HORIZONS)


def level_ranks(celsius: npt.NDArray[np.float64], th: AssetThresholds) -> npt.NDArray[np.intp]:
    """The level rule, elementwise: the rank in :data:`LEVELS` of each forecast (°C), 2 at or
    above ``critique_c``, 1 at or above ``alerte_c`` (``critique_c`` is above it), else 0."""
    ranks: npt.NDArray[np.intp] = (celsius >= th.alerte_c).astype(np.intp)
    ranks += celsius >= th.critique_c
    return ranks


def explain(row: list[float], level: Level, th: AssetThresholds) -> LevelDetail:
    """The level event of a prediction: its peak horizon against the threshold of its level."""
    peak = max(range(len(row)), key=row.__getitem__)
    value, h = row[peak], HORIZON_NAMES[peak]
    if level is Level.NORMAL:
        return LevelDetail(
            value, "°C", th.alerte_c,
            f"oil temperature forecast peaks at {value:.1f} °C ({h}), below ALERTE "
            f"{th.alerte_c:.1f} °C",
        )  # fmt: skip
    threshold = th.critique_c if level is Level.CRITIQUE else th.alerte_c
    return LevelDetail(
        value, "°C", threshold,
        f"oil temperature forecast {value:.1f} °C at {h} reaches {level} threshold "
        f"{threshold:.1f} °C",
    )  # fmt: skip


class TransformerTemperatureService(PredictionService[TransformerMeasurement, AssetThresholds]):
    name = "transformer-temperature"
    title = "Transformer oil temperature"
    description = __doc__ or ""
    Measurement = TransformerMeasurement
    Prediction = OilTemperaturePrediction
    AssetSettings = AssetThresholds
    target = Target("OT", "°C", "top-oil temperature", bounds=(-60.0, 200.0))
    window = Window(
        timedelta(hours=1), min_rows=HISTORY_HOURS, what="hourly",
        min_reason=f"{HISTORY_HOURS - 1} h of history and the hour forecast from",
    )  # fmt: skip
    # rows_independent stays False: a forecast reads the 71 rows before its origin
    replay_batch = 24  # one day of forecast origins per request
    #: the thresholds of the model card by asset (``VIGIE_ASSET_CONFIG`` overrides them)
    card_thresholds: Mapping[str, AssetThresholds] = {}

    def bind(self, loaded: LoadedModel) -> None:
        self.card_thresholds = {
            asset: AssetThresholds.model_validate(t)
            for asset, t in loaded.card.thresholds.get("per_asset", {}).items()
        }
        super().bind(loaded)

    def thresholds_for(self, asset_id: str) -> AssetThresholds:
        """The asset's configured thresholds, else its card's; a 422 for an asset with none."""
        default = self.card_thresholds.get(asset_id)
        if default is None and asset_id not in self.assets:
            known = ", ".join(sorted({*self.card_thresholds, *self.assets}))
            raise Unprocessable(
                f"unknown asset {asset_id!r} (known: {known}; add one with VIGIE_ASSET_CONFIG)",
                details=[field_error(("body", "asset_id"), "unknown asset", "unknown_asset")],
            )
        return self.assets.for_asset(asset_id, default)

    # -- scoring ----------------------------------------------------------------------------
    def check(self, batch: Batch[TransformerMeasurement]) -> None:
        self.thresholds_for(batch.asset_id)

    def infer(self, batch: Batch[TransformerMeasurement]) -> Outputs:
        """Forecasts (°C) of every horizon from each row; NaN for the history-only rows."""
        return {"oil_temperature_c": forecast_rows(self.model.model, batch.matrix(COLUMNS))}

    def present(self, batch: Batch[TransformerMeasurement], outputs: Outputs) -> Scores:
        th = self.thresholds_for(batch.asset_id)
        alerte_c, critique_c = th.alerte_c, th.critique_c
        first = HISTORY_HOURS - 1  # the first forecast origin
        celsius = outputs["oil_temperature_c"][first:]
        values: list[list[float]] = celsius.tolist()
        ranks = level_ranks(celsius, th)
        levels = [LEVELS[r] for r in ranks.max(axis=1).tolist()]
        items: list[dict[str, Any]] = []
        target_times: list[datetime] = []
        rows = zip(batch.times[first:], values, ranks.tolist(), levels, strict=True)
        for origin, row, row_ranks, level in rows:
            forecasts, crossings = [], []
            for h, delta, value, r in zip(
                HORIZON_NAMES, _HORIZON_DELTAS, row, row_ranks, strict=True
            ):
                target_time = origin + delta
                target_times.append(target_time)
                rounded = round(value, 3)
                forecasts.append(
                    {"horizon": h, "target_time": target_time, "oil_temperature_c": rounded,
                     "level": LEVELS[r]}
                )  # fmt: skip
                if r:
                    crossings.append(
                        {"horizon": h, "level": LEVELS[r],
                         "threshold_c": critique_c if r == 2 else alerte_c, "forecast_c": rounded}
                    )  # fmt: skip
            items.append(
                {"forecasts": forecasts, "crossings": crossings,
                 "recommendation": RECOMMENDATIONS[level]}
            )  # fmt: skip
        n = len(items)
        return Scores(
            levels=levels,
            items=items,
            explain=lambda i: explain(values[i], levels[i], th),
            rows=range(first, len(batch)),
            points=Points(
                self.target.name,
                row=[i for i in range(n) for _ in HORIZONS],
                horizon=HORIZON_NAMES * n,
                time=target_times,
                value=[v for row in values for v in row],
            ),
        )

    # -- the vigie command ------------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        return training.train(data_dir, progress)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        return evaluate(model, load_series(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Windows of ``HISTORY_HOURS - 1 + batch`` hourly rows, each giving ``batch`` forecasts
        (see :func:`.replay.replay_requests`); default asset: the file name up to its first
        ``_`` (``ETTh1_train.csv`` -> ``ETTh1``)."""
        return replay.replay_requests(data, asset, batch)
