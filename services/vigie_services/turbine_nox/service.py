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
:mod:`vigie_services.turbine_nox.pems`. Feedback is recomputed with the model in service from the
inputs stored with the prediction. When the correction state cannot be read (Redis down), the
static values are served and ``calibration.status`` says ``unavailable``.

A request reads the turbine's correction once: with one ``GET`` when it carries no analyser
value; otherwise in the one transaction that learns its values and writes the new correction
(the items are scored with the correction as read, before learning). Learning a request's values
runs as a batch (:meth:`~vigie_services.turbine_nox.pems.Corrector.learn_many`: the same result
as value by value, without one linear solve per value).

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

import logging
import operator
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from vigie.contract.errors import ConfigError
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
from vigie.io.asset_state import StateUnavailable
from vigie.io.prediction_log import ForecastPoint, MatchResult
from vigie.models.compiled import compile_parts
from vigie.models.store import LoadedModel, sha256_file
from vigie_services.turbine_nox import pems

log = logging.getLogger(__name__)

UNIT = "mg/m3"
NOX_LIMIT_DEFAULT = 100.0
CO_LIMIT_DEFAULT = 100.0
ALERTE_FRACTION_DEFAULT = 0.9
LOW, HIGH = pems.TARGET_BOUNDS
REPLAY_ASSET = "GT1"
REPLAY_START_YEAR = 2015  # rows of a file without a year column: the year after the training data

RECOMMENDATIONS = {
    Level.NORMAL: "No action: predicted emissions within the permit.",
    Level.ALERTE: (
        "Emissions near the permit limit: check the analyser and the combustion tuning "
        "(water/steam injection, firing temperature) and be ready to reduce load."
    ),
    Level.CRITIQUE: (
        "Predicted emissions above the permit limit: reduce load or adjust combustion now, "
        "verify against the analyser and record the exceedance per the permit procedure."
    ),
}


def _field(name: str) -> Any:
    unit, description, low, high = pems.INPUT_SPEC[name]
    return Field(ge=low, le=high, description=f"{description}, {unit} (hourly average)")


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
    NOX: float | None = Field(
        default=None, ge=LOW, le=HIGH, description="optional: NOx measured by the analyser, mg/m3"
    )
    CO: float | None = Field(
        default=None, ge=LOW, le=HIGH, description="optional: CO measured by the analyser, mg/m3"
    )


# What predict reads of a measurement (one C call each) and how it logs a batch of them.
_INPUTS = operator.attrgetter(*pems.INPUTS)
_MEASUREMENTS: TypeAdapter[list[TurbineMeasurement]] = TypeAdapter(list[TurbineMeasurement])


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
    nox_limit_mg_m3: float = Field(NOX_LIMIT_DEFAULT, gt=0, le=HIGH, description="NOx permit")
    co_limit_mg_m3: float = Field(CO_LIMIT_DEFAULT, gt=0, le=HIGH, description="CO permit")
    alerte_fraction: float = Field(
        ALERTE_FRACTION_DEFAULT, gt=0, lt=1, description="ALERTE at this fraction of a limit"
    )


def level_of(nox: float, co: float, limits: AssetLimits) -> tuple[Level, LevelDetail]:
    """The level rule, with what explains it (the worst of NOx and CO; NOx on a tie)."""
    fraction = limits.alerte_fraction
    nox_limit, co_limit = limits.nox_limit_mg_m3, limits.co_limit_mg_m3
    nox_alerte = fraction * nox_limit
    if nox > nox_limit:
        level, name, value, threshold = Level.CRITIQUE, "NOx", nox, nox_limit
    elif nox >= nox_alerte:
        level, name, value, threshold = Level.ALERTE, "NOx", nox, nox_alerte
    else:
        level, name, value, threshold = Level.NORMAL, "NOx", nox, nox_alerte
    if level is not Level.CRITIQUE:
        co_alerte = fraction * co_limit
        if co > co_limit:
            level, name, value, threshold = Level.CRITIQUE, "CO", co, co_limit
        elif co >= co_alerte and level is Level.NORMAL:
            level, name, value, threshold = Level.ALERTE, "CO", co, co_alerte
    if level is Level.NORMAL:
        message = f"NOx {nox:.1f} mg/m3, CO {co:.1f} mg/m3 below ALERTE"
        return level, LevelDetail(nox, UNIT, nox_alerte, message)
    word = "above permit" if level is Level.CRITIQUE else "near permit, ALERTE from"
    limit = nox_limit if name == "NOx" else co_limit
    message = f"{name} prediction {value:.1f} mg/m3 {word} {threshold:.1f} (permit {limit:g})"
    return level, LevelDetail(value, UNIT, threshold, message)


class TurbineNoxService(PredictionService[TurbineMeasurement]):
    name = "turbine-nox"
    title = "Gas turbine NOx and CO (PEMS)"
    description = __doc__ or ""
    Measurement = TurbineMeasurement
    Prediction = EmissionPrediction
    target = Target("NOX", UNIT, "NOx measured by the turbine's analyser", bounds=(LOW, HIGH))
    replay_batch = 24  # hours per request
    predict_does_io = True  # reads (and with analyser values, updates) the correction in Redis

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        try:
            self.limits = {
                asset: AssetLimits.model_validate(cfg) for asset, cfg in self.asset_config.items()
            }
        except ValidationError as exc:
            raise ConfigError(f"VIGIE_ASSET_CONFIG [{self.name}]: {exc}") from exc
        self.correctors = pems.correctors()

    def limits_for(self, asset_id: str) -> AssetLimits:
        return self.limits.get(asset_id) or AssetLimits()

    # -- correction state ---------------------------------------------------------------------
    # The state (Redis, one JSON object per turbine) is read once per request: a request
    # without analyser values reads it with one GET; one with analyser values reads, learns
    # and writes it in one transaction (AssetStateStore.update), and is scored with what the
    # transaction read, before learning.
    def _read_state(self, asset_id: str) -> tuple[dict[str, Any] | None, bool]:
        """(state of the model in service, available?)."""
        store = self.state
        if store is None:
            return None, False
        try:
            state = store.get(asset_id)
        except StateUnavailable:
            return None, False
        if state is None or state.get("model_version") != self.model.version:
            return None, True  # nothing learned for this model yet
        return state, True

    def _update(self, asset_id: str, learn: Any) -> None:
        """Apply ``learn(state, serving_state)`` to the turbine's state atomically: ``state`` is
        what to change (a fresh one when nothing was learned for the model in service), and
        ``serving_state`` the state as read (``None`` when fresh), before any change."""
        if self.state is None:
            raise StateUnavailable("no correction state store")
        version = self.model.version

        def change(old: dict[str, Any] | None) -> dict[str, Any]:
            fresh = old is None or old.get("model_version") != version
            state: dict[str, Any] = {"model_version": version} if fresh else dict(old or {})
            learn(state, None if fresh else old)
            return state

        self.state.update(asset_id, change)

    def _learn(
        self,
        state: dict[str, Any],
        terms: dict[str, Any],
        static: dict[str, Any],
        observed: dict[str, list[tuple[int, str, float]]],
    ) -> dict[str, int]:
        """Feed each target's ``(row, key, value)`` observations, in order, to its corrector
        (:meth:`pems.Corrector.learn_many`); counts by outcome."""
        counts: dict[str, int] = {}
        for target, rows in observed.items():
            if not rows:
                continue
            index = np.array([row for row, _, _ in rows])
            new, outcomes = self.correctors[target].learn_many(
                state.get(target),
                terms[target][index],
                static[target][index],
                [value for _, _, value in rows],
                [key for _, key, _ in rows],
            )
            state[target] = new
            for outcome in outcomes:
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    # -- serving ------------------------------------------------------------------------------
    def predict(self, asset_id: str, measurements: Sequence[TurbineMeasurement]) -> list[Scored]:
        model: pems.PemsModel = self.model.model
        x = np.array([_INPUTS(m) for m in measurements], dtype=float)
        static = model.static(x)
        terms = {t: model.terms(t, x, static[t]) for t in self.correctors}
        observed: dict[str, list[tuple[int, str, float]]] = {t: [] for t in pems.TARGETS}
        for i, m in enumerate(measurements):
            nox, co = m.NOX, m.CO
            if nox is not None or co is not None:
                key = m.timestamp.isoformat()
                if nox is not None:
                    observed["NOX"].append((i, key, float(nox)))
                if co is not None:
                    observed["CO"].append((i, key, float(co)))
        if observed["NOX"] or observed["CO"]:
            scored: dict[str, Any] = {}

            def learn(state: dict[str, Any], serving: dict[str, Any] | None) -> None:
                # the items are scored with the state as read, before learning changes it in
                # place (on a retried transaction, with the last attempt's)
                scored["corrected"] = self._corrected(serving, terms, static)
                scored["calibration"] = self._calibration(serving, True, None)
                counts = self._learn(state, terms, static, observed)
                scored["learning"] = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

            try:
                self._update(asset_id, learn)
                corrected, calibration = scored["corrected"], scored["calibration"]
                calibration["learning"] = scored["learning"]
            except StateUnavailable as exc:
                log.warning("turbine-nox: correction of %s not updated: %s", asset_id, exc)
                corrected = self._corrected(None, terms, static)
                calibration = self._calibration(
                    None, False, "not learned: correction state unavailable"
                )
        else:
            state, available = self._read_state(asset_id)
            corrected = self._corrected(state, terms, static)
            calibration = self._calibration(state, available, None)
        limits = self.limits_for(asset_id)
        limits_body = limits.model_dump()
        logged = _MEASUREMENTS.dump_python(list(measurements), mode="json")
        return [
            self._score(m, row, nox, co, nox_s, co_s, calibration, limits, limits_body, dumped)
            for m, row, nox, co, nox_s, co_s, dumped in zip(
                measurements,
                x.tolist(),
                corrected["NOX"].tolist(),
                corrected["CO"].tolist(),
                static["NOX"].tolist(),
                static["CO"].tolist(),
                logged,
                strict=True,
            )
        ]

    def _corrected(
        self, state: dict[str, Any] | None, terms: dict[str, Any], static: dict[str, Any]
    ) -> dict[str, Any]:
        """Corrected values per target with ``state`` (``None``: the static values)."""
        return {
            t: c.corrected(state.get(t) if state else None, terms[t], static[t])
            for t, c in self.correctors.items()
        }

    def _calibration(
        self, state: dict[str, Any] | None, available: bool, learning: str | None
    ) -> dict[str, Any]:
        nox, co = (state or {}).get("NOX") or {}, (state or {}).get("CO") or {}
        status = "unavailable" if not available else "corrected" if state else "static"
        mae = nox.get("mae_corrected")
        static_mae = nox.get("mae_static")
        return {
            "status": status,
            "nox_values_learned": int(nox.get("learned", 0)),
            "co_values_learned": int(co.get("learned", 0)),
            "nox_recent_mae_mg_m3": None if mae is None else round(mae, 3),
            "nox_recent_static_mae_mg_m3": None if static_mae is None else round(static_mae, 3),
            "learning": learning,
        }

    def _score(
        self,
        m: TurbineMeasurement,
        inputs: list[float],
        nox: float,
        co: float,
        nox_s: float,
        co_s: float,
        calibration: dict[str, Any],
        limits: AssetLimits,
        limits_body: dict[str, Any],
        logged: dict[str, Any],
    ) -> Scored:
        level, detail = level_of(nox, co, limits)
        body: dict[str, Any] = {
            "nox_mg_m3": round(nox, 3),
            "co_mg_m3": round(co, 3),
            "nox_static_mg_m3": round(nox_s, 3),
            "co_static_mg_m3": round(co_s, 3),
        }
        if m.NOX is not None:
            body["nox_measured_mg_m3"] = m.NOX
            body["nox_residual_mg_m3"] = round(m.NOX - nox, 3)
        if m.CO is not None:
            body["co_measured_mg_m3"] = m.CO
            body["co_residual_mg_m3"] = round(m.CO - co, 3)
        body["calibration"] = {
            **calibration,
            "nox_correction_mg_m3": round(nox - nox_s, 3),
            "co_correction_mg_m3": round(co - co_s, 3),
        }
        body["limits"] = dict(limits_body)
        body["inputs"] = dict(zip(pems.INPUTS, inputs, strict=True))
        body["recommendation"] = RECOMMENDATIONS[level]
        return Scored(
            timestamp=m.timestamp,
            level=level,
            body=body,
            detail=detail,
            measurement=logged,
            points=[ForecastPoint(self.target.name, "h0", m.timestamp, nox)],
        )

    def learn(self, asset_id: str, matches: list[MatchResult]) -> None:
        """Analyser NOx from feedback: recompute the static value with the model in service
        from the inputs stored with the matched prediction, then update the correction."""
        rows: list[list[float]] = []
        observed: dict[str, list[tuple[int, str, float]]] = {"NOX": []}
        for match in matches:
            if match.target != self.target.name or not match.predictions:
                continue  # nothing predicted at that hour: no inputs to learn from
            inputs = match.predictions[0].get("inputs")
            if not isinstance(inputs, dict) or any(c not in inputs for c in pems.INPUTS):
                continue
            observed["NOX"].append((len(rows), match.timestamp.isoformat(), float(match.value)))
            rows.append([float(inputs[c]) for c in pems.INPUTS])
        if not observed["NOX"]:
            return
        model: pems.PemsModel = self.model.model
        x = np.array(rows, dtype=float)
        static = model.static(x)
        terms = {"NOX": model.terms("NOX", x, static["NOX"])}
        self._update(asset_id, lambda s, _serving: self._learn(s, terms, static, observed))

    # -- training and evaluation --------------------------------------------------------------
    def data_file(self, data_dir: Path) -> Path:
        path = data_dir / "turbine_nox" / "train.csv"
        if not path.is_file():
            raise FileNotFoundError(f"training data not found: {path}")
        return path

    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        path = self.data_file(data_dir)
        started = time.perf_counter()
        progress(f"reading {path}")
        frame = pems.load_frame(path)
        if pems.YEAR not in frame.columns:
            raise ValueError(f"{path}: missing column '{pems.YEAR}'")
        result = pems.fit(frame, progress)
        elapsed = time.perf_counter() - started
        bundle = compile_parts(pems.compiled_parts(result.model, result.check_rows), progress)
        years = sorted(int(y) for y in frame[pems.YEAR].unique())
        card: dict[str, Any] = {
            "title": self.title,
            "training_data": [
                {
                    "path": str(path),
                    "sha256": sha256_file(path),
                    "rows": len(frame),
                    "time_range": {"start": str(years[0]), "end": str(years[-1])},
                }
            ],
            "features": [{"name": c, "unit": pems.INPUT_SPEC[c][0]} for c in pems.INPUTS],
            "targets": [{"name": "NOX", "unit": UNIT}, {"name": "CO", "unit": UNIT}],
            "metrics": result.metrics,
            "baselines": result.baselines,
            "validation": result.validation,
            "thresholds": {
                "unit": UNIT,
                "rule": (
                    "per asset: CRITIQUE when the corrected NOx > nox_limit_mg_m3 or CO > "
                    "co_limit_mg_m3, ALERTE when >= alerte_fraction x limit; "
                    "VIGIE_ASSET_CONFIG overrides"
                ),
                "defaults": AssetLimits().model_dump(),
            },
            "hyperparameters": result.hyperparameters,
            "training_time_s": round(elapsed, 2),
            "compiled": bundle,
        }
        return TrainedModel(model=result.model, card=card)

    def bind(self, loaded: LoadedModel) -> None:
        if not isinstance(loaded.model, pems.PemsModel):
            raise TypeError(f"expected a PemsModel, got {type(loaded.model).__name__}")
        super().bind(loaded)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        if not isinstance(model, pems.PemsModel):
            raise ValueError(f"expected a PemsModel, got {type(model).__name__}")
        return pems.evaluate(model, pems.load_frame(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Hourly rows in file order, ``batch`` per request, with the analyser's ``NOX`` and
        ``CO`` when the file has both (so the turbine's correction learns as it would on site;
        each row is scored before its own values are learned). The file has no timestamps, only
        ``year``, and the rows of a year are hourly in order: row k of year Y is sent at Y-01-01
        00:00Z + k h (without ``year``, from ``REPLAY_START_YEAR``). Default asset: ``GT1``."""
        import pandas as pd  # replay only: never in a serving worker

        with_targets = set(pems.TARGETS) <= set(pd.read_csv(data, nrows=0).columns)
        frame = pems.load_frame(data, need_targets=with_targets)
        if pems.YEAR in frame.columns:
            years = frame[pems.YEAR].astype(int)
        else:
            years = pd.Series(REPLAY_START_YEAR, index=frame.index)
        hours = pd.to_timedelta(years.groupby(years).cumcount(), unit="h")
        times = pd.to_datetime(years.astype(str) + "-01-01", utc=True) + hours
        if (times.dt.year != years).any():
            raise ValueError(f"{data}: a year has more rows than hours")
        columns = [*pems.INPUTS, *(pems.TARGETS if with_targets else ())]
        rows = [
            {"timestamp": f"{ts:%Y-%m-%dT%H:%M:%SZ}", **dict(zip(columns, values, strict=True))}
            for ts, values in zip(times, frame[columns].to_numpy().tolist(), strict=True)
        ]
        return replay_windows(asset or REPLAY_ASSET, rows, batch)
