"""turbine-nox: predictive emission monitoring (PEMS) of gas turbines, NOx and CO in mg/m3.

A request carries hourly process / ambient values of one turbine (the asset); each gets the NOx and
CO predicted by the static model (``*_static_mg_m3``) and the recalibrated values
(``nox_mg_m3``, ``co_mg_m3``) that the levels use. A measurement may also carry the analysers'
``NOX`` / ``CO``: the item then gives the residual (measured - corrected), and the values update
the turbine's correction (after the item was scored with the correction known before).

Online recalibration
--------------------
Analyser NOx values sent to ``POST /v1/feedback`` (target ``NOX``, at the hour they measure) and
NOx/CO sent with measurements update a per-turbine correction kept in Redis (shared by every
worker): an exponentially weighted ridge regression of the residual on the static prediction and
the inputs, half-life ≈ 69 values (≈ 3 days hourly), bounded (±30 mg/m3 NOx, ±10 CO), ignoring
re-sent timestamps, a stuck analyser (a value equal to the previous one) and outliers (beyond 5x
the robust scale of recent residuals, unless 12 in a row); details in
:mod:`vigie_services.turbine_nox.corrector`; a request reads the correction once, and learns
its analyser values after its items were scored (:mod:`vigie_services.turbine_nox.recalibration`).
Feedback is recomputed with the model in service from the inputs stored with the prediction.
When the correction state cannot be read (Redis down), the static values are served and
``calibration.status`` says ``unavailable``.

Each prediction is logged with the forecast point (target ``NOX``, horizon ``h0``, the hour, the
corrected value), so feedback also gives the live MAE (feedback response and ``/metrics``,
``vigie_live_mae{horizon="h0"}``); ``calibration`` in each item gives the turbine's recent MAE of
the corrected and the static predictions against its analyser.

Level rule (per turbine): CRITIQUE when the corrected NOx is above ``nox_limit_mg_m3`` (or CO above
``co_limit_mg_m3``), ALERTE when it reaches ``alerte_fraction`` of the limit. Defaults: NOx 100
mg/m3 hourly (EU IED 2010/75/EU: 50 mg/Nm3 for natural-gas turbines, and 95 % of hourly values
must stay within 200 % of it; 1.5 % of the 2011-2014 hours exceed 100, 25 % exceed 75, so a
75 limit would alarm every day), CO 100 mg/m3 (the IED value for CO; the data never reach 45),
``alerte_fraction`` 0.9 (NOx ALERTE from 90 mg/m3, ≈ the 96th percentile of the data). Override
per turbine with ``VIGIE_ASSET_CONFIG`` (any key may be omitted; any asset id works)::

    {"turbine-nox": {"GT1": {"nox_limit_mg_m3": 75, "co_limit_mg_m3": 100, "alerte_fraction": 0.9}}}
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from vigie.contract.batch import Batch, LevelDetail, Outputs, Points, Scores
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
from vigie.io.feedback import MatchResult
from vigie.models.store import LoadedModel
from vigie.models.training import data_files
from vigie_services.turbine_nox import data as turbine_data
from vigie_services.turbine_nox import pems, training
from vigie_services.turbine_nox.items import items
from vigie_services.turbine_nox.recalibration import Recalibration, model_outputs, observed

UNIT = training.UNIT
LOW, HIGH = pems.TARGET_BOUNDS
REPLAY_ASSET = "GT1"
DATA_FILE = "turbine_nox/train.csv"


def _field(name: str) -> Any:
    unit, description, low, high = pems.INPUT_SPEC[name]
    return Field(ge=low, le=high, description=f"{description}, {unit} (hourly average)")


def _analyser(name: str) -> Any:
    return Field(
        None, ge=LOW, le=HIGH, description=f"optional: {name} measured by the analyser, mg/m3"
    )


class TurbineMeasurement(MeasurementBase):
    """One hourly average of a gas turbine's process and ambient values."""

    AT: float = _field("AT")
    AP: float = _field("AP")
    AH: float = _field("AH")
    AFDP: float = _field("AFDP")
    GTEP: float = _field("GTEP")
    TIT: float = _field("TIT")
    TAT: float = _field("TAT")
    TEY: float = _field("TEY")
    CDP: float = _field("CDP")
    NOX: float | None = _analyser("NOx")
    CO: float | None = _analyser("CO")


class Calibration(BaseModel):
    status: str = Field(
        description="corrected | static (nothing learned yet for this turbine) | unavailable "
        "(correction state unreachable: static values served)"
    )
    nox_correction_mg_m3: float
    co_correction_mg_m3: float
    nox_values_learned: int
    co_values_learned: int
    nox_recent_mae_mg_m3: float | None = Field(
        None, description="recent MAE of the corrected NOx vs accepted analyser values"
    )
    nox_recent_static_mae_mg_m3: float | None = Field(
        None, description="the same for the static NOx"
    )
    learning: str | None = Field(
        None, description="what happened to NOX/CO sent with this request (when any)"
    )


class Limits(BaseModel):
    nox_limit_mg_m3: float
    co_limit_mg_m3: float
    alerte_fraction: float


class EmissionPrediction(BaseModel):
    timestamp: datetime = Field(description="the hour of the measurement")
    level: Level
    nox_mg_m3: float = Field(description="NOx, corrected (what the level uses), mg/m3")
    co_mg_m3: float = Field(description="CO, corrected, mg/m3")
    nox_static_mg_m3: float = Field(description="NOx of the static model, mg/m3")
    co_static_mg_m3: float = Field(description="CO of the static model, mg/m3")
    nox_measured_mg_m3: float | None = None
    nox_residual_mg_m3: float | None = Field(None, description="measured - corrected NOx")
    co_measured_mg_m3: float | None = None
    co_residual_mg_m3: float | None = Field(None, description="measured - corrected CO")
    calibration: Calibration
    limits: Limits
    inputs: dict[str, float] = Field(description="the inputs used (recalibration uses them)")
    recommendation: str


class AssetLimits(StrictModel):
    """One turbine's permit limits (``VIGIE_ASSET_CONFIG``)."""

    nox_limit_mg_m3: float = Field(100.0, gt=0, le=HIGH, description="NOx permit")
    co_limit_mg_m3: float = Field(100.0, gt=0, le=HIGH, description="CO permit")
    alerte_fraction: float = Field(
        0.9, gt=0, lt=1, description="ALERTE at this fraction of a limit"
    )


RULE = (
    "per asset: CRITIQUE when the corrected NOx > nox_limit_mg_m3 or CO > co_limit_mg_m3, "
    "ALERTE when >= alerte_fraction x limit; VIGIE_ASSET_CONFIG overrides"
)
_LEVELS = (Level.NORMAL, Level.ALERTE, Level.CRITIQUE)


def levels_of(nox: pems.FloatArray, co: pems.FloatArray, limits: AssetLimits) -> list[Level]:
    """The level rule on arrays: the worst of NOx's and CO's (what :func:`level_of` says)."""
    fraction, nox_limit, co_limit = (
        limits.alerte_fraction, limits.nox_limit_mg_m3, limits.co_limit_mg_m3
    )  # fmt: skip
    critique = (nox > nox_limit) | (co > co_limit)
    alerte = (nox >= fraction * nox_limit) | (co >= fraction * co_limit)
    return [_LEVELS[c] for c in np.where(critique, 2, alerte.astype(np.int64)).tolist()]


def level_of(nox: float, co: float, limits: AssetLimits) -> tuple[Level, LevelDetail]:
    """The level rule, with what explains it (the worst of NOx and CO; NOx on a tie)."""
    fraction, nox_limit, co_limit = (
        limits.alerte_fraction, limits.nox_limit_mg_m3, limits.co_limit_mg_m3
    )  # fmt: skip
    for level, name, value, threshold, limit in (
        (Level.CRITIQUE, "NOx", nox, nox_limit, nox_limit),
        (Level.CRITIQUE, "CO", co, co_limit, co_limit),
        (Level.ALERTE, "NOx", nox, fraction * nox_limit, nox_limit),
        (Level.ALERTE, "CO", co, fraction * co_limit, co_limit),
    ):
        if value > threshold if level is Level.CRITIQUE else value >= threshold:
            word = "above permit" if level is Level.CRITIQUE else "near permit, ALERTE from"
            message = (
                f"{name} prediction {value:.1f} mg/m3 {word} {threshold:.1f} (permit {limit:g})"
            )
            return level, LevelDetail(value, UNIT, threshold, message)
    message = f"NOx {nox:.1f} mg/m3, CO {co:.1f} mg/m3 below ALERTE"
    return Level.NORMAL, LevelDetail(nox, UNIT, fraction * nox_limit, message)


class TurbineNoxService(PredictionService[TurbineMeasurement, AssetLimits]):
    name = "turbine-nox"
    title = "Gas turbine NOx and CO (PEMS)"
    description = __doc__ or ""
    Measurement = TurbineMeasurement
    Prediction = EmissionPrediction
    AssetSettings = AssetLimits
    target = Target("NOX", UNIT, "NOx measured by the turbine's analyser", bounds=(LOW, HIGH))
    replay_batch = 24  # hours per request
    rows_independent = False  # not bit for bit: see recalibration.model_outputs
    predict_does_io = True  # present reads (and with analyser values, updates) it in Redis
    recalibration: ClassVar[Recalibration] = Recalibration()  # stateless: the state is in Redis

    def bind(self, loaded: LoadedModel) -> None:
        if not isinstance(loaded.model, pems.PemsModel):
            raise TypeError(f"expected a PemsModel, got {type(loaded.model).__name__}")
        super().bind(loaded)

    # -- serving ------------------------------------------------------------------------------
    def infer(self, batch: Batch[TurbineMeasurement]) -> Outputs:
        return model_outputs(self.model.model, batch.matrix(pems.INPUTS))

    def present(self, batch: Batch[TurbineMeasurement], outputs: Outputs) -> Scores:
        measured = {t: batch.column(t) for t in pems.TARGETS}
        corrected, calibration = self.recalibration.score(
            self.state, batch.asset_id, self.model.version, outputs, observed(batch.times, measured)
        )
        limits = self.assets.for_asset(batch.asset_id)
        nox, co = corrected["NOX"], corrected["CO"]
        levels = levels_of(nox, co, limits)
        inputs = batch.matrix(pems.INPUTS)
        body = items(levels, corrected, outputs, measured, inputs, calibration, limits.model_dump())
        return Scores(
            levels=levels,
            items=body,
            explain=lambda i: level_of(float(nox[i]), float(co[i]), limits)[1],
            points=Points.one_per_row(self.target.name, "h0", batch.times, nox.tolist()),
        )

    def learn(self, asset_id: str, matches: list[MatchResult]) -> None:
        recalibration, target = self.recalibration, self.target.name
        recalibration.learn_feedback(self.state, asset_id, self.model, target, matches)

    # -- the vigie command --------------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        (path,) = data_files(data_dir, DATA_FILE)
        thresholds = {"unit": UNIT, "rule": RULE, "defaults": AssetLimits().model_dump()}
        return TrainedModel(*training.train(path, progress, thresholds))

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        if not isinstance(model, pems.PemsModel):
            raise ValueError(f"expected a PemsModel, got {type(model).__name__}")
        return training.evaluate(model, turbine_data.load_frame(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Hourly rows, ``batch`` per request, with the analyser values when the file has them
        (:func:`vigie_services.turbine_nox.data.replay_requests`). Default asset: ``GT1``."""
        return turbine_data.replay_requests(data, asset or REPLAY_ASSET, batch)
