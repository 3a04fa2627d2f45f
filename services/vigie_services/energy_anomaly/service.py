"""energy-anomaly: daily regional gas consumption, its forecast and an anomaly score per day.

Assets are the 15 operator x region series of the training data, with ASCII ids
``<operator>.<region>`` (accents stripped, e.g. ``grtgaz.auvergne-rhone-alpes``,
``terega.occitanie``, ``grtgaz.provence-alpes-cote-d-azur``); the model card lists them under
``series``. An unknown series is a 422.

A request carries one series' consecutive days, oldest first, one measurement per day (the date
of ``timestamp`` as written, e.g. ``2023-01-15T00:00:00Z``, is the gas day): the 24 hourly
values in MWh (``null`` = a missing hour), optionally the published daily total and the
social-movement flag. Every day with ``HISTORY_DAYS`` (7) days before it in the request gets one
prediction; the first 7 days are history only. So a request needs at least 8 days (fewer: 422),
and a backfill of ``7 + k`` days gets ``k`` predictions.

Each prediction gives the forecast daily total, the actual one, the residual, the anomaly score
and its components, the suspected kinds and a level. The score, the kinds and the level rule are
documented in :mod:`.model`; ALERTE / CRITIQUE thresholds (score units) are the 99th / 99.9th
percentiles of the validation-year scores, stored in the model card under ``thresholds``.
``GET /v1/clusters`` gives the k-means and DBSCAN clusters of the series' normalised daily
profiles (:mod:`.clustering`).

Feedback: every prediction logs one forecast point (target ``daily_mwh``, horizon ``d0``, at
the day's timestamp); ``POST /v1/feedback`` with the observed daily total scores the forecast.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter

from vigie.contract.errors import Unprocessable, field_error
from vigie.contract.levels import Level
from vigie.contract.service import (
    LevelDetail,
    MeasurementBase,
    PredictionService,
    Progress,
    ReplayRequest,
    Scored,
    Target,
    TrainedModel,
    replay_windows,
)
from vigie.io.prediction_log import ForecastPoint
from vigie.models.compiled import compile_parts
from vigie.models.store import LoadedModel, sha256_file
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import model as md

# Training (scikit-learn) and the CSV (pandas) are imported by the methods that need them, never
# at import: a serving worker that loads the compiled serving artifact must not pay for them.
if TYPE_CHECKING:
    import pandas as pd

MAX_HOURLY_MWH = 1.0e6
MAX_DAILY_MWH = 24 * MAX_HOURLY_MWH
TARGET = "daily_mwh"
HORIZON = "d0"

HourValue = Annotated[float, Field(ge=0, le=MAX_HOURLY_MWH)]


class DayMeasurement(MeasurementBase):
    """One gas day of one series."""

    hourly_mwh: list[HourValue | None] = Field(
        min_length=24,
        max_length=24,
        description=(
            "consumption of each hour 00:00..23:00 of the day, MWh (PCS 0 °C), >= 0; null = "
            "missing hour (reported as the missing_hours anomaly kind)"
        ),
    )
    daily_mwh: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DAILY_MWH,
        description="published daily consumption, MWh (PCS 0 °C); default: the sum of the hours",
    )
    movement_social: bool = Field(
        default=False, description="the day is a listed strike / social-movement day"
    )


# How predict logs the scored days, in one serializer call.
_DAYS: TypeAdapter[list[DayMeasurement]] = TypeAdapter(list[DayMeasurement])


class Components(BaseModel):
    residual_z: float = Field(description="relative residual / the series' residual scale")
    profile_z: float = Field(description="standardised Isolation Forest score of the profile")
    missing_hours: int = Field(description="number of null hours")
    stuck_meter: bool = Field(description="flat or repeated profile rule")
    shifted_profile: bool = Field(description="time-shifted profile rule")


class DayPrediction(BaseModel):
    timestamp: datetime = Field(description="the scored day")
    level: Level
    forecast_mwh: float = Field(description="expected daily consumption, MWh")
    actual_mwh: float = Field(description="daily consumption (published, else sum of hours), MWh")
    residual_mwh: float = Field(description="actual - forecast, MWh")
    residual_pct: float = Field(description="residual / forecast, %")
    anomaly_score: float = Field(description="combined anomaly score (see the service doc)")
    components: Components
    kinds: list[str] = Field(
        description="suspected kinds when above NORMAL: spike, drop, stuck_meter, "
        "shifted_profile, missing_hours, unusual_profile"
    )
    profile_shift_hours: int = Field(
        description="shift (h) of the reference profile that best matches the day (0 = none)"
    )
    thresholds: dict[str, float] = Field(description="ALERTE / CRITIQUE score thresholds")


def _features_spec() -> list[dict[str, str]]:
    units = {"level": "ratio (scale / series mean daily MWh)"}
    spec = [
        {"name": n, "unit": units.get(n, "ratio (MWh / mean of the 7 previous days)")}
        for n in md.FORECAST_FEATURES
        if n.startswith("lag_") or n == "level"
    ]
    spec += [{"name": n, "unit": "flag or sine/cosine"} for n in md.CALENDAR_FEATURES]
    spec += [{"name": n, "unit": "profile feature"} for n in md.PROFILE_FEATURES]
    return spec


class EnergyAnomalyService(PredictionService[DayMeasurement]):
    name = "energy-anomaly"
    title = "Regional energy consumption: forecast and anomalies"
    description = __doc__ or ""
    Measurement = DayMeasurement
    Prediction = DayPrediction
    target = Target(TARGET, "MWh", "daily consumption (PCS 0 °C)", bounds=(0.0, MAX_DAILY_MWH))

    history_days = md.HISTORY_DAYS
    replay_batch = 7  # new days per request (each also carries the HISTORY_DAYS before them)

    def bind(self, loaded: LoadedModel) -> None:
        if not isinstance(loaded.model, md.EnergyModel):
            raise TypeError(f"expected an EnergyModel, got {type(loaded.model).__name__}")
        super().bind(loaded)

    @property
    def energy(self) -> md.EnergyModel:
        model = self.model.model
        assert isinstance(model, md.EnergyModel)
        return model

    def resources(self) -> dict[str, Callable[[], dict[str, Any]]]:
        return {"clusters": self.clusters}

    def clusters(self) -> dict[str, Any]:
        return {"series": sorted(self.energy.series), **self.energy.clusters}

    # -- serving ----------------------------------------------------------------------------
    def _check(self, asset_id: str, ms: Sequence[DayMeasurement]) -> None:
        if asset_id not in self.energy.series:
            known = ", ".join(sorted(self.energy.series))
            raise Unprocessable(
                f"unknown series {asset_id!r} (known: {known})",
                details=[field_error(("body", "asset_id"), "unknown series", "unknown_asset")],
            )
        for i in range(1, len(ms)):
            prev, day = ms[i - 1].timestamp.date(), ms[i].timestamp.date()
            if (day - prev).days != 1:
                msg = (
                    f"measurements must be consecutive days, oldest first: expected "
                    f"{prev + timedelta(days=1)}, got {day}"
                )
                raise Unprocessable(
                    msg,
                    details=[field_error(("body", "measurements", i, "timestamp"), msg,
                                         "not_consecutive")],
                )  # fmt: skip
        for i, m in enumerate(ms):
            if m.daily_mwh is None and m.hourly_mwh.count(None) == len(m.hourly_mwh):
                msg = "a day needs at least one hourly value or daily_mwh"
                raise Unprocessable(
                    msg,
                    details=[field_error(("body", "measurements", i, "hourly_mwh"), msg,
                                         "no_data")],
                )  # fmt: skip
        if len(ms) <= self.history_days:
            msg = (
                f"needs at least {self.history_days + 1} consecutive days (the first "
                f"{self.history_days} are history), got {len(ms)}"
            )
            raise Unprocessable(
                msg, details=[field_error(("body", "measurements"), msg, "too_short")]
            )

    @staticmethod
    def series_input(ms: Sequence[DayMeasurement]) -> md.SeriesInput:
        return md.SeriesInput(
            dates=np.array([m.timestamp.date() for m in ms], dtype="datetime64[D]"),
            hours=np.array([m.hourly_mwh for m in ms], dtype=float),  # None -> NaN
            daily=np.array([m.daily_mwh for m in ms], dtype=float),
            movement=np.array([m.movement_social for m in ms], dtype=bool),
        )

    def predict(self, asset_id: str, measurements: Sequence[DayMeasurement]) -> list[Scored]:
        self._check(asset_id, measurements)
        model = self.energy
        s = md.score(model, asset_id, self.series_input(measurements))
        scored = list(measurements[s.offset : s.offset + len(s.forecast)])
        logged = _DAYS.dump_python(scored, mode="json")
        thresholds = {"alerte": round(model.alerte, 4), "critique": round(model.critique, 4)}
        out = []
        # one day per row; numpy columns as Python numbers (tolist: no float() per value)
        rows = zip(
            scored, logged, s.levels, s.forecast.tolist(), s.actual.tolist(), s.score.tolist(),
            s.residual_z.tolist(), s.profile_z.tolist(), s.n_missing.tolist(), s.stuck.tolist(),
            s.shifted.tolist(), s.kinds, s.shift.tolist(), strict=True,
        )  # fmt: skip
        for row in rows:
            m, dumped, level_name, forecast, actual, score, res_z, prof_z = row[:8]
            missing, stuck, shifted, kinds, shift = row[8:]
            level = Level(level_name)
            body = {
                "forecast_mwh": round(forecast, 3),
                "actual_mwh": round(actual, 3),
                "residual_mwh": round(actual - forecast, 3),
                "residual_pct": round(100 * (actual - forecast) / max(forecast, 1e-6), 3),
                "anomaly_score": round(score, 4),
                "components": {
                    "residual_z": round(res_z, 4),
                    "profile_z": round(prof_z, 4),
                    "missing_hours": missing,
                    "stuck_meter": stuck,
                    "shifted_profile": shifted,
                },
                "kinds": kinds,
                "profile_shift_hours": shift,
                "thresholds": dict(thresholds),
            }
            out.append(
                Scored(
                    timestamp=m.timestamp,
                    level=level,
                    body=body,
                    detail=self._detail(level, score, kinds, model),
                    measurement=dumped,
                    points=[ForecastPoint(TARGET, HORIZON, m.timestamp, forecast)],
                )
            )
        return out

    @staticmethod
    def _detail(level: Level, score: float, kinds: list[str], model: md.EnergyModel) -> LevelDetail:
        if level is Level.NORMAL:
            return LevelDetail(
                score, "score", model.alerte,
                f"anomaly score {score:.2f} below ALERTE {model.alerte:.2f}",
            )  # fmt: skip
        threshold = model.critique if level is Level.CRITIQUE else model.alerte
        return LevelDetail(
            score, "score", threshold,
            f"anomaly score {score:.2f} ({', '.join(kinds)}): {level} (threshold "
            f"{threshold:.2f})",
        )  # fmt: skip

    # -- training and evaluation ------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        path = data_dir / dt.TRAIN_FILE
        if not path.is_file():
            raise FileNotFoundError(f"training data not found: {path}")
        from vigie_services.energy_anomaly import training

        started = time.perf_counter()
        progress(f"reading {path}")
        frame = dt.load_frame(path)
        result = training.fit(frame, progress)
        elapsed = time.perf_counter() - started
        bundle = compile_parts(md.compiled_parts(result.model, result.check_rows), progress)
        model = result.model
        card: dict[str, Any] = {
            "title": self.title,
            "training_data": [
                {
                    "path": str(path),
                    "sha256": sha256_file(path),
                    "rows": len(frame),
                    "time_range": {
                        "start": f"{frame['date'].min():%Y-%m-%d}",
                        "end": f"{frame['date'].max():%Y-%m-%d}",
                    },
                }
            ],
            "features": _features_spec(),
            "targets": [{"name": TARGET, "unit": "MWh"}],
            "history_days": md.HISTORY_DAYS,
            "series": {
                sid: {
                    "operator": st.operator,
                    "region": st.region,
                    "mean_daily_mwh": round(st.mean_daily_mwh, 3),
                    "residual_scale": round(st.residual_scale, 5),
                }
                for sid, st in model.series.items()
            },
            "metrics": result.metrics,
            "baselines": result.baselines,
            "validation": result.validation,
            "thresholds": {
                "unit": "score",
                "alerte": model.alerte,
                "critique": model.critique,
                "quantiles": {"alerte": md.ALERTE_QUANTILE, "critique": md.CRITIQUE_QUANTILE},
                "residual_norm": model.residual_norm,
                "profile_norm": model.profile_norm,
                "rule": (
                    "score >= critique -> CRITIQUE; score >= alerte, missing hours, stuck "
                    "meter or shifted profile -> ALERTE; else NORMAL. score = "
                    "hypot(residual_z / residual_norm, max(profile_z, 0) / profile_norm) + 4 x "
                    "missing hours + 8 x stuck meter + 8 x shifted profile; "
                    "thresholds = 99th / 99.9th percentiles of the validation-year scores"
                ),
            },
            "clusters": {
                "kmeans": model.clusters["kmeans"]["assignments"],
                "dbscan": model.clusters["dbscan"]["assignments"],
                "kmeans_k": model.clusters["kmeans"]["parameters"]["n_clusters"],
                "dbscan_eps": model.clusters["dbscan"]["parameters"]["eps"],
            },
            "hyperparameters": result.hyperparameters,
            "training_time_s": round(elapsed, 2),
            "compiled": bundle,
        }
        return TrainedModel(model=model, card=card)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        from vigie_services.energy_anomaly import training

        if not isinstance(model, md.EnergyModel):
            raise ValueError(f"expected an EnergyModel, got {type(model).__name__}")
        frame = dt.load_frame(data)
        if asset is not None:
            frame = frame[frame["series"] == asset]
            if frame.empty:
                raise ValueError(f"no row of series {asset!r} in {data}")
        return training.evaluate(model, frame)

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Each series of the file in turn (only ``asset`` when given), in date order: windows
        of ``HISTORY_DAYS + batch`` consecutive days that get ``batch`` predictions each. A day
        without any value (a gap in the file, or every hour and the total empty) cannot be
        sent, so it splits the series into runs replayed separately, each starting with
        ``HISTORY_DAYS`` days of history only."""
        frame = dt.load_frame(data)
        if asset is not None:
            frame = frame[frame["series"] == asset]
            if frame.empty:
                raise ValueError(f"no row of series {asset!r} in {data}")
        runs = [
            (sid, run)
            for sid, part in dt.split_series(frame).items()
            for run in _runs_with_data(part)
        ]
        return (
            request
            for sid, run in runs
            for request in replay_windows(sid, run, batch, history=self.history_days)
        )


def _runs_with_data(part: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """The day measurements of one series (from ``data.split_series``), split at empty days."""
    import pandas as pd

    runs: list[list[dict[str, Any]]] = [[]]
    hours = part[list(dt.HOURS)].to_numpy(dtype=float)
    for day, values, daily, movement in zip(
        part.index, hours, part["daily"], part["movement"], strict=True
    ):
        if np.isnan(values).all() and pd.isna(daily):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(
            {
                "timestamp": f"{day:%Y-%m-%d}T00:00:00Z",
                "hourly_mwh": [None if np.isnan(v) else float(v) for v in values],
                "daily_mwh": None if pd.isna(daily) else float(daily),
                "movement_social": bool(movement),
            }
        )
    return [run for run in runs if run]
