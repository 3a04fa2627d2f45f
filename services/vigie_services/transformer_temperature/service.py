"""transformer-temperature: top-oil temperature forecasts of transformers, 1 h, 6 h, 24 h ahead.

A request carries one transformer's recent hourly measurements (loads and OT), oldest first, one
per hour without gaps. Every measurement that has ``HISTORY_HOURS`` hours of history in the request
(itself included) is a forecast origin and gets one prediction; the earlier ones are history only.
So a SCADA that posts the last ``HISTORY_HOURS`` hours gets exactly one forecast, for the latest
hour, and a backfill of ``HISTORY_HOURS + k - 1`` hours gets ``k``.

Level rule (per asset, °C): a horizon is CRITIQUE when its forecast reaches ``critique_c``,
ALERTE when it reaches ``alerte_c``; the prediction takes its worst horizon. Defaults come from
each transformer's training distribution (stored in the model card); override or add assets with
``VIGIE_ASSET_CONFIG``::

    {"transformer-temperature": {"T1": {"alerte_c": 75.0, "critique_c": 90.0}}}
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from vigie.contract.errors import ConfigError, Unprocessable, field_error
from vigie.contract.levels import Level
from vigie.contract.service import (
    LevelDetail,
    MeasurementBase,
    PredictionService,
    Progress,
    ReplayRequest,
    Scored,
    StrictModel,
    Target,
    TrainedModel,
    replay_windows,
)
from vigie.io.prediction_log import ForecastPoint
from vigie.models.compiled import compile_parts
from vigie.models.store import LoadedModel, sha256_file
from vigie_services.transformer_temperature import forecasting as fc

LOAD_DOC = (
    "(MW-scale as published by the ETT data set, whose authors state no unit; may be negative)"
)
ONE_HOUR = timedelta(hours=1)

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
    alerte_c: float = Field(ge=-60, le=200, description="ALERTE at or above, °C")
    critique_c: float = Field(ge=-60, le=200, description="CRITIQUE at or above, °C")

    @model_validator(mode="after")
    def _ordered(self) -> AssetThresholds:
        if self.critique_c <= self.alerte_c:
            raise ValueError("critique_c must be above alerte_c")
        return self


def _horizon(hours: int) -> str:
    return f"h{hours}"


# What predict reads of a measurement (one C call each), how it logs the origins, and the
# horizons' names and offsets (computed once, not per origin).
_VALUES = operator.attrgetter(*fc.COLUMNS)
_MEASUREMENTS: TypeAdapter[list[TransformerMeasurement]] = TypeAdapter(list[TransformerMeasurement])
_HORIZON_NAMES: tuple[str, ...] = tuple(_horizon(h) for h in fc.HORIZONS)
_HORIZON_DELTAS: tuple[timedelta, ...] = tuple(timedelta(hours=h) for h in fc.HORIZONS)


class TransformerTemperatureService(PredictionService[TransformerMeasurement]):
    name = "transformer-temperature"
    title = "Transformer oil temperature"
    description = __doc__ or ""
    Measurement = TransformerMeasurement
    Prediction = OilTemperaturePrediction
    target = Target("OT", "°C", "top-oil temperature", bounds=(-60.0, 200.0))

    history_hours = fc.HISTORY_HOURS
    horizons = fc.HORIZONS
    replay_batch = 24  # one day of forecast origins per request

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        try:
            self._configured = {
                asset: AssetThresholds.model_validate(cfg)
                for asset, cfg in self.asset_config.items()
            }
        except ValidationError as exc:
            raise ConfigError(f"VIGIE_ASSET_CONFIG [{self.name}]: {exc}") from exc
        self.thresholds: dict[str, AssetThresholds] = dict(self._configured)

    def bind(self, loaded: LoadedModel) -> None:
        defaults = {
            asset: AssetThresholds.model_validate(t)
            for asset, t in loaded.card.thresholds.get("per_asset", {}).items()
        }
        self.thresholds = {**defaults, **self._configured}
        super().bind(loaded)

    # -- serving ----------------------------------------------------------------------------
    def _check_request(self, asset_id: str, ms: Sequence[TransformerMeasurement]) -> None:
        if asset_id not in self.thresholds:
            known = ", ".join(sorted(self.thresholds))
            raise Unprocessable(
                f"unknown asset {asset_id!r} (known: {known}; add one with VIGIE_ASSET_CONFIG)",
                details=[field_error(("body", "asset_id"), "unknown asset", "unknown_asset")],
            )
        for i in range(1, len(ms)):
            if ms[i].timestamp - ms[i - 1].timestamp != ONE_HOUR:
                expected = ms[i - 1].timestamp + ONE_HOUR
                msg = (
                    f"measurements must be hourly, oldest first, without gaps: expected "
                    f"{expected.isoformat()}, got {ms[i].timestamp.isoformat()}"
                )
                raise Unprocessable(
                    msg,
                    details=[
                        field_error(("body", "measurements", i, "timestamp"), msg, "not_hourly")
                    ],
                )
        if len(ms) < self.history_hours:
            msg = (
                f"needs at least {self.history_hours} consecutive hourly measurements "
                f"(oldest first), got {len(ms)}"
            )
            raise Unprocessable(
                msg, details=[field_error(("body", "measurements"), msg, "too_short")]
            )

    def predict(
        self, asset_id: str, measurements: Sequence[TransformerMeasurement]
    ) -> list[Scored]:
        self._check_request(asset_id, measurements)
        th = self.thresholds[asset_id]
        values = np.array([_VALUES(m) for m in measurements], dtype=float)
        forecasts = fc.forecast(self.model.model, values)
        origins = list(measurements[self.history_hours - 1 :])
        logged = _MEASUREMENTS.dump_python(origins, mode="json")
        return [
            self._score(origin, row, th, dumped)
            for origin, row, dumped in zip(origins, forecasts.tolist(), logged, strict=True)
        ]

    def _score(
        self,
        origin: TransformerMeasurement,
        row: list[float],
        th: AssetThresholds,
        logged: dict[str, Any],
    ) -> Scored:
        per_horizon = []
        crossings = []
        points = []
        level = Level.NORMAL
        alerte_c, critique_c = th.alerte_c, th.critique_c
        target = self.target.name
        for h, delta, value in zip(_HORIZON_NAMES, _HORIZON_DELTAS, row, strict=True):
            # the level rule of _level, inlined: this runs for every horizon of every origin
            if value >= critique_c:
                h_level = Level.CRITIQUE
            elif value >= alerte_c:
                h_level = Level.ALERTE
            else:
                h_level = Level.NORMAL
            target_time = origin.timestamp + delta
            rounded = round(value, 3)
            per_horizon.append(
                {"horizon": h, "target_time": target_time, "oil_temperature_c": rounded,
                 "level": h_level}
            )  # fmt: skip
            if h_level is not Level.NORMAL:
                threshold = critique_c if h_level is Level.CRITIQUE else alerte_c
                crossings.append(
                    {"horizon": h, "level": h_level, "threshold_c": threshold,
                     "forecast_c": rounded}
                )  # fmt: skip
                if h_level is Level.CRITIQUE or level is Level.NORMAL:
                    level = h_level
            points.append(ForecastPoint(target, h, target_time, value))
        return Scored(
            timestamp=origin.timestamp,
            level=level,
            body={
                "forecasts": per_horizon,
                "crossings": crossings,
                "recommendation": RECOMMENDATIONS[level],
            },
            detail=self._detail(level, row, th),
            measurement=logged,
            points=points,
        )

    @staticmethod
    def _level(value: float, th: AssetThresholds) -> Level:
        if value >= th.critique_c:
            return Level.CRITIQUE
        if value >= th.alerte_c:
            return Level.ALERTE
        return Level.NORMAL

    def _detail(self, level: Level, row: list[float], th: AssetThresholds) -> LevelDetail:
        peak = max(range(len(row)), key=row.__getitem__)
        value, h = row[peak], _horizon(self.horizons[peak])
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

    # -- training and evaluation ------------------------------------------------------------
    def data_files(self, data_dir: Path) -> dict[str, Path]:
        folder = data_dir / "transformer"
        files = {"ETTh1": folder / "ETTh1_train.csv", "ETTh2": folder / "ETTh2_train.csv"}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"training data not found: {', '.join(missing)}")
        return files

    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        files = self.data_files(data_dir)
        started = time.perf_counter()
        series = {}
        for asset, path in files.items():
            progress(f"reading {path}")
            series[asset] = fc.load_series(path)
        result = fc.fit(series, progress)
        elapsed = time.perf_counter() - started
        bundle = compile_parts(fc.compiled_parts(result.model, result.check_rows), progress)
        training_data = [
            {
                "path": str(path),
                "sha256": sha256_file(path),
                "rows": len(series[asset]),
                "time_range": {
                    "start": series[asset].index[0].isoformat(),
                    "end": series[asset].index[-1].isoformat(),
                },
            }
            for asset, path in files.items()
        ]
        baselines = {
            asset: {
                h: {
                    k.removeprefix("persistence_"): v
                    for k, v in m.items()
                    if k.startswith("persistence_")
                }
                for h, m in per_h.items()
            }
            for asset, per_h in result.metrics.items()
        }
        card: dict[str, Any] = {
            "title": self.title,
            "training_data": training_data,
            "features": result.features,
            "targets": [{"name": f"OT(t+{h}h)", "unit": "°C"} for h in self.horizons],
            "history_hours": self.history_hours,
            "horizons": [_horizon(h) for h in self.horizons],
            "metrics": result.metrics,
            "baselines": {"persistence": baselines},
            "validation": result.validation,
            "thresholds": {
                "unit": "°C",
                "rule": (
                    "per asset: CRITIQUE when a horizon's forecast >= critique_c, ALERTE when "
                    ">= alerte_c; defaults from the asset's training OT distribution "
                    "(see forecasting module); VIGIE_ASSET_CONFIG overrides"
                ),
                "per_asset": result.thresholds,
            },
            "hyperparameters": result.hyperparameters,
            "training_time_s": round(elapsed, 2),
            "compiled": bundle,
        }
        return TrainedModel(model=result.model, card=card)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        return fc.evaluate(model, fc.load_series(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Windows of ``HISTORY_HOURS - 1 + batch`` hourly rows, each giving ``batch`` forecasts
        (the first ``HISTORY_HOURS - 1`` rows of the file are history only). The file's dates
        carry no time zone: they are sent as written, as UTC. Default asset: the file name up
        to its first ``_`` (``ETTh1_train.csv`` -> ``ETTh1``)."""
        series = fc.load_series(data)
        values = series[list(fc.COLUMNS)].to_numpy().tolist()
        rows = [
            {"timestamp": f"{ts:%Y-%m-%dT%H:%M:%SZ}", **dict(zip(fc.COLUMNS, row, strict=True))}
            for ts, row in zip(series.index, values, strict=True)
        ]
        asset_id = asset or data.stem.split("_")[0]
        return replay_windows(asset_id, rows, batch, history=self.history_hours - 1)
