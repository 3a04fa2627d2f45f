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

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from vigie.contract.batch import Batch, LevelDetail, Outputs, Points, Scores
from vigie.contract.errors import Unprocessable, field_error
from vigie.contract.levels import Level
from vigie.contract.replay import ReplayRequest
from vigie.contract.service import (
    MeasurementBase,
    PredictionService,
    Progress,
    Target,
    TrainedModel,
)
from vigie.contract.window import Window
from vigie.models.store import LoadedModel
from vigie.models.training import data_files
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc
from vigie_services.energy_anomaly.card import TARGET
from vigie_services.energy_anomaly.schemas import DayPrediction

HORIZON = "d0"
MAX_HOURLY_MWH = 1.0e6
MAX_DAILY_MWH = 24 * MAX_HOURLY_MWH

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


class EnergyAnomalyService(PredictionService[DayMeasurement, Any]):
    name = "energy-anomaly"
    title = "Regional energy consumption: forecast and anomalies"
    description = __doc__ or ""
    Measurement = DayMeasurement
    Prediction = DayPrediction
    target = Target(TARGET, "MWh", "daily consumption (PCS 0 °C)", bounds=(0.0, MAX_DAILY_MWH))
    window = Window(
        timedelta(days=1), md.HISTORY_DAYS + 1, "consecutive days", calendar_days=True,
        min_reason=f"the first {md.HISTORY_DAYS} are history",
    )  # fmt: skip
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
    def check(self, batch: Batch[DayMeasurement]) -> None:
        if batch.asset_id not in self.energy.series:
            known = ", ".join(sorted(self.energy.series))
            raise Unprocessable(
                f"unknown series {batch.asset_id!r} (known: {known})",
                details=[field_error(("body", "asset_id"), "unknown series", "unknown_asset")],
            )
        for i, m in enumerate(batch.rows):
            if m.daily_mwh is None and m.hourly_mwh.count(None) == len(m.hourly_mwh):
                msg = "a day needs at least one hourly value or daily_mwh"
                raise Unprocessable(
                    msg,
                    details=[field_error(("body", "measurements", i, "hourly_mwh"), msg,
                                         "no_data")],
                )  # fmt: skip

    @staticmethod
    def series_input(batch: Batch[DayMeasurement]) -> md.SeriesInput:
        """A request's days as the model reads a series (the gas day is the date written)."""
        ms = batch.rows
        return md.SeriesInput(
            dates=np.array([t.date() for t in batch.times], dtype="datetime64[D]"),
            hours=np.array([m.hourly_mwh for m in ms], dtype=float),  # None -> NaN
            daily=batch.column("daily_mwh"),
            movement=np.array([m.movement_social for m in ms], dtype=bool),
        )

    def infer(self, batch: Batch[DayMeasurement]) -> Outputs:
        s = sc.score(self.energy, batch.asset_id, self.series_input(batch))
        return {
            "forecast": s.forecast, "actual": s.actual, "score": s.score,
            "residual_z": s.residual_z, "profile_z": s.profile_z, "n_missing": s.n_missing,
            "stuck": s.stuck, "shifted": s.shifted, "shift": s.shift,
            "levels": np.array(s.levels, dtype=object), "kinds": _objects(s.kinds),
        }  # fmt: skip

    def present(self, batch: Batch[DayMeasurement], outputs: Outputs) -> Scores:
        model = self.energy
        thresholds = {"alerte": round(model.alerte, 4), "critique": round(model.critique, 4)}
        forecast, actual = outputs["forecast"].tolist(), outputs["actual"].tolist()
        score = outputs["score"].tolist()
        levels = [Level(v) for v in outputs["levels"].tolist()]
        kinds: list[list[str]] = outputs["kinds"].tolist()
        # one day per row; numpy columns as Python numbers (tolist: no float() per value)
        columns = zip(
            forecast, actual, score, outputs["residual_z"].tolist(),
            outputs["profile_z"].tolist(), outputs["n_missing"].tolist(),
            outputs["stuck"].tolist(), outputs["shifted"].tolist(), kinds,
            outputs["shift"].tolist(), strict=True,
        )  # fmt: skip
        items = [
            {
                "forecast_mwh": round(f, 3),
                "actual_mwh": round(a, 3),
                "residual_mwh": round(a - f, 3),
                "residual_pct": round(100 * (a - f) / max(f, 1e-6), 3),
                "anomaly_score": round(sc_, 4),
                "components": {
                    "residual_z": round(res_z, 4),
                    "profile_z": round(prof_z, 4),
                    "missing_hours": missing,
                    "stuck_meter": stuck,
                    "shifted_profile": shifted,
                },
                "kinds": k,
                "profile_shift_hours": shift,
                "thresholds": dict(thresholds),
            }
            for f, a, sc_, res_z, prof_z, missing, stuck, shifted, k, shift in columns
        ]
        first = md.HISTORY_DAYS
        rows = range(first, first + len(items))
        times = [batch.times[r] for r in rows]
        return Scores(
            levels=levels,
            items=items,
            explain=lambda i: _detail(levels[i], score[i], kinds[i], model),
            times=times,
            rows=rows,
            points=Points.one_per_row(TARGET, HORIZON, times, forecast),
        )

    # -- training and evaluation ------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        (path,) = data_files(data_dir, dt.TRAIN_FILE)
        from vigie_services.energy_anomaly import training
        from vigie_services.energy_anomaly.card import card_fields

        progress(f"reading {path}")
        frame = dt.load_frame(path)
        result = training.fit(frame, progress)
        from vigie.models.compile import compile_parts  # training only: not in workers

        bundle = compile_parts(md.compiled_parts(result.model, result.check_rows), progress)
        return TrainedModel(model=result.model, card=card_fields(result, frame, path, bundle))

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
        """See :func:`.replay.replay_requests`."""
        from vigie_services.energy_anomaly.replay import replay_requests

        return replay_requests(data, asset, batch)


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (lists stay lists, not a second axis)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


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
