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
  (``summary.features``), so equivalent inputs give the same probabilities. From raw, the days
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
``VIGIE_ASSET_CONFIG``::

    {"solar-flare": {"SUN": {"alerte_probability_m_or_above": 0.3,
                             "critique_probability_x": 0.2}}}

**Feedback**: target ``flare_M_or_above_next_24h``, value 1 if a flare >=M1.0 peaked on day
*d+1*, else 0, with the timestamp 00:00Z of day *d+1*. It is matched to P(>=M) of the prediction
for day *d* (horizon ``24h``), and the live MAE is the mean of |outcome - P(>=M)|, an absolute
Brier-like error (0 is perfect; climatology at a 17 % base rate scores about 0.28).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

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
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm

DATA_FILE = Path("solar_flare") / "daily_train.csv"
FEEDBACK_HORIZON = "24h"
PROBABILITY_DECIMALS = 6
UNIT = "probability"
REPLAY_ASSET = "SUN"

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


# ------------------------------------------------------------------------------------ schemas


def _col(name: str) -> Any:
    """A pydantic Field with the bounds, unit and meaning of one summary column."""
    c = next(c for c in sm.SUMMARY_COLUMNS if c.name == name)
    return Field(ge=c.ge, le=c.le, description=f"{c.description} [{c.unit}]")


def _optional_col(name: str) -> Any:
    c = next(c for c in sm.SUMMARY_COLUMNS if c.name == name)
    return Field(default=None, ge=c.ge, le=c.le, description=f"{c.description} [{c.unit}]")


class DailySummary(StrictModel):
    """The summary columns of ``daily_train.csv`` for day d (see the data set's README)."""

    sunspot_number: float = _col("sunspot_number")
    sunspot_number_std: float | None = _optional_col("sunspot_number_std")
    sunspot_n_obs: int | None = _optional_col("sunspot_n_obs")
    sunspot_number_mean_27d: float = _col("sunspot_number_mean_27d")
    sunspot_number_change_1d: float = _col("sunspot_number_change_1d")
    n_B_flares_today: int = _col("n_B_flares_today")  # noqa: N815 (the CSV column)
    n_C_flares_today: int = _col("n_C_flares_today")  # noqa: N815 (the CSV column)
    n_M_flares_today: int = _col("n_M_flares_today")  # noqa: N815 (the CSV column)
    n_X_flares_today: int = _col("n_X_flares_today")  # noqa: N815 (the CSV column)
    n_C_flares_last_3d: int = _col("n_C_flares_last_3d")  # noqa: N815 (the CSV column)
    n_C_flares_last_7d: int = _col("n_C_flares_last_7d")  # noqa: N815 (the CSV column)
    n_C_flares_last_27d: int = _col("n_C_flares_last_27d")  # noqa: N815 (the CSV column)
    n_M_flares_last_3d: int = _col("n_M_flares_last_3d")  # noqa: N815 (the CSV column)
    n_M_flares_last_7d: int = _col("n_M_flares_last_7d")  # noqa: N815 (the CSV column)
    n_M_flares_last_27d: int = _col("n_M_flares_last_27d")  # noqa: N815 (the CSV column)
    n_X_flares_last_3d: int = _col("n_X_flares_last_3d")  # noqa: N815 (the CSV column)
    n_X_flares_last_7d: int = _col("n_X_flares_last_7d")  # noqa: N815 (the CSV column)
    n_X_flares_last_27d: int = _col("n_X_flares_last_27d")  # noqa: N815 (the CSV column)
    max_xray_flux_today: float = _col("max_xray_flux_today")
    max_xray_flux_last_3d: float = _col("max_xray_flux_last_3d")
    max_xray_flux_last_27d: float = _col("max_xray_flux_last_27d")
    days_since_last_M_or_X: int = _col("days_since_last_M_or_X")  # noqa: N815 (the CSV column)
    days_since_last_X: int = _col("days_since_last_X")  # noqa: N815 (the CSV column)


class FlareEventIn(StrictModel):
    """One GOES X-ray flare of the last 27 days."""

    goes_class: str = Field(
        max_length=16,
        description=(
            "GOES class: a letter A, B, C, M or X (upper case) and a magnitude > 0, e.g. M2.3, "
            "X1.0, C5; below 10 for A-M. Peak flux = magnitude x 1e-8 (A), 1e-7 (B), 1e-6 (C), "
            "1e-5 (M), 1e-4 (X) W/m²"
        ),
        json_schema_extra={"pattern": sm.CLASS_PATTERN},
        examples=["M2.3"],
    )
    peak_time: AwareDatetime = Field(
        description="peak time, RFC 3339 with a UTC offset; its UTC date must be in d-26 .. d"
    )

    @field_validator("goes_class")
    @classmethod
    def _valid_class(cls, value: str) -> str:
        sm.parse_flare_class(value)  # FlareClassError is a ValueError: a 422 naming the field
        return value


SunspotNumber = Annotated[float, Field(ge=0, le=1000)]


class RawHistory(StrictModel):
    """The raw material of day d: the flares and sunspot numbers of d-26 .. d."""

    flares: list[FlareEventIn] = Field(
        max_length=5000,
        description="every GOES flare (A-X) that peaked on d-26 .. d (UTC dates); may be empty",
    )
    sunspot_numbers: list[SunspotNumber] = Field(
        min_length=sm.WINDOW_DAYS,
        max_length=sm.WINDOW_DAYS,
        description=(
            f"the {sm.WINDOW_DAYS} SILSO daily total sunspot numbers of d-26 .. d, oldest first "
            "(the last one is day d) [SN v2]"
        ),
    )
    sunspot_number_std: float | None = _optional_col("sunspot_number_std")
    sunspot_n_obs: int | None = _optional_col("sunspot_n_obs")


class FlareDay(MeasurementBase):
    """One UTC day d to forecast from: its summary OR its raw material (exactly one)."""

    summary: DailySummary | None = Field(default=None, description="the summary of day d")
    raw: RawHistory | None = Field(default=None, description="the raw material of day d")

    @field_validator("timestamp")
    @classmethod
    def _midnight_utc(cls, value: datetime) -> datetime:
        utc = value.astimezone(UTC)
        if utc.time() != dtime(0, 0):
            raise ValueError(
                "timestamp must be 00:00:00Z of the UTC day d, e.g. 2017-09-05T00:00:00Z"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> FlareDay:
        if (self.summary is None) == (self.raw is None):
            raise ValueError("give exactly one of summary or raw for each day")
        return self


# What serving reads of a summary, in one C call, and how it logs a batch of days.
_MODEL_INPUTS = operator.attrgetter(*sm.MODEL_INPUTS)
_DAYS: TypeAdapter[list[FlareDay]] = TypeAdapter(list[FlareDay])
ONE_DAY = timedelta(days=1)
MIDNIGHT = dtime(0, 0)


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


class AssetThresholds(StrictModel):
    alerte_probability_m_or_above: float = Field(gt=0, le=1, description="ALERTE at or above")
    critique_probability_x: float = Field(gt=0, le=1, description="CRITIQUE at or above")


# ----------------------------------------------------------------------------- the level rule


def level_rule(p_m: float, p_x: float, th: AssetThresholds) -> tuple[Level, list[dict[str, Any]]]:
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


# ---------------------------------------------------------------------------------- service


class SolarFlareService(PredictionService[FlareDay]):
    name = "solar-flare"
    title = "Solar flare risk for tomorrow"
    description = __doc__ or ""
    Measurement = FlareDay
    Prediction = FlarePrediction
    target = Target(
        sm.TARGETS["m"],
        "0/1",
        "1 if at least one flare >=M1.0 peaked on day d+1 (timestamp 00:00Z of d+1), else 0",
        allowed=frozenset({0.0, 1.0}),
    )
    replay_batch = 30  # days per request

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        try:
            self._configured = {
                asset: AssetThresholds.model_validate(cfg)
                for asset, cfg in self.asset_config.items()
            }
        except ValidationError as exc:
            raise ConfigError(f"VIGIE_ASSET_CONFIG [{self.name}]: {exc}") from exc
        self.default_thresholds: AssetThresholds | None = None

    def bind(self, loaded: LoadedModel) -> None:
        th = loaded.card.thresholds
        self.default_thresholds = AssetThresholds(
            alerte_probability_m_or_above=th["alerte_probability_m_or_above"],
            critique_probability_x=th["critique_probability_x"],
        )
        super().bind(loaded)

    def thresholds_for(self, asset_id: str) -> AssetThresholds:
        if asset_id in self._configured:
            return self._configured[asset_id]
        if self.default_thresholds is None:
            raise RuntimeError("no model bound")
        return self.default_thresholds

    # -- serving ----------------------------------------------------------------------------
    def summaries(self, measurements: Sequence[FlareDay]) -> list[dict[str, Any]]:
        """The summary of each day (given, or derived from raw); 422 naming every bad field."""
        out: list[dict[str, Any]] = []
        details: list[dict[str, Any]] = []
        for i, m in enumerate(measurements):
            at: tuple[str | int, ...] = ("body", "measurements", i)
            day = sm.utc_day(m.timestamp)
            if m.summary is not None:
                summary = m.summary.model_dump()
                for column, reason in sm.consistency_errors(summary):
                    details.append(
                        field_error((*at, "summary", column), reason, "inconsistent_summary")
                    )
            else:
                assert m.raw is not None  # the schema guarantees exactly one
                raw = m.raw
                outside = []
                for j, flare in enumerate(raw.flares):
                    try:
                        sm.window_offset(day, flare.peak_time)
                    except ValueError as exc:
                        path = (*at, "raw", "flares", j, "peak_time")
                        outside.append(field_error(path, str(exc), "outside_window"))
                if outside:
                    details += outside
                    continue
                events = [sm.FlareEvent(f.goes_class, f.peak_time) for f in raw.flares]
                summary = sm.summary_from_raw(
                    day, events, raw.sunspot_numbers, raw.sunspot_number_std, raw.sunspot_n_obs
                )
                summary.pop("date")
            out.append(summary)
        if details:
            first = details[0]
            message = f"{first['field']}: {first['message']}"
            if len(details) > 1:
                message += f" (and {len(details) - 1} more)"
            raise Unprocessable(message, details=details)
        return out

    def _summaries(
        self, measurements: Sequence[FlareDay]
    ) -> tuple[list[dict[str, Any]], npt.NDArray[np.float64]]:
        """What :meth:`summaries` returns, with the :data:`~.summary.MODEL_INPUTS` matrix of the
        summaries, in one pass: the consistency rules run on the matrix for every day at once
        (:func:`~.summary.inconsistent_rows`). A request with a bad day goes through
        :meth:`summaries`, whose 422 names every bad field."""
        out: list[dict[str, Any]] = []
        rows: list[tuple[float, ...]] = []
        given: list[bool] = []
        for m in measurements:
            if m.summary is not None:
                # DailySummary has only int / float / None fields: its __dict__ is its
                # model_dump(), without the serializer (tests/services/solar_flare checks it).
                out.append(m.summary.__dict__.copy())
                rows.append(_MODEL_INPUTS(m.summary))
                given.append(True)
                continue
            assert m.raw is not None  # the schema guarantees exactly one
            raw = m.raw
            events = [sm.FlareEvent(f.goes_class, f.peak_time) for f in raw.flares]
            try:
                summary = sm.summary_from_raw(
                    sm.utc_day(m.timestamp),
                    events,
                    raw.sunspot_numbers,
                    raw.sunspot_number_std,
                    raw.sunspot_n_obs,
                )
            except ValueError:  # a flare outside the window
                self.summaries(measurements)  # raises the 422 naming every bad field
                raise
            summary.pop("date")
            out.append(summary)
            rows.append(tuple(summary[c] for c in sm.MODEL_INPUTS))
            given.append(False)
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(sm.MODEL_INPUTS))
        if (sm.inconsistent_rows(values) & np.array(given, dtype=bool)).any():
            self.summaries(measurements)  # raises the 422 naming every bad field
            raise AssertionError("inconsistent_rows and consistency_errors disagree")
        return out, values

    def predict(self, asset_id: str, measurements: Sequence[FlareDay]) -> list[Scored]:
        summaries, values = self._summaries(measurements)
        probs = md.probabilities(self.model.model, sm.features_matrix(values))
        return self._scored(
            asset_id,
            measurements,
            summaries,
            probs["c"].tolist(),
            probs["m"].tolist(),
            probs["x"].tolist(),
        )

    def predict_batch(
        self, calls: Sequence[tuple[str, Sequence[FlareDay]]]
    ) -> list[list[Scored] | Exception]:
        """Micro-batching: the days of every call through ONE model call (one feature matrix,
        one compiled classifier call per class for all rows), then each call scored as
        :meth:`predict` scores it. A day's probabilities do not depend on the other rows, so
        every call gets what :meth:`predict` would give it (the probabilities, rounded to 6
        decimals, may only differ in the last bit before rounding: ONNX Runtime's Sigmoid is
        vectorised over several rows, scalar for one); a call's 422 (a bad summary or raw
        history) is in its slot only. Should the joint model call fail, each call runs alone,
        as :meth:`predict`."""
        out: list[list[Scored] | Exception] = []
        # (slot, summaries, MODEL_INPUTS matrix) of the calls whose days checked out
        ready: list[tuple[int, list[dict[str, Any]], npt.NDArray[np.float64]]] = []
        for _asset_id, measurements in calls:
            try:
                summaries, values = self._summaries(measurements)
            except Exception as exc:
                out.append(exc)
                continue
            ready.append((len(out), summaries, values))
            out.append([])
        if not ready:
            return out
        try:
            joint = np.concatenate([values for _, _, values in ready])
            probs = md.probabilities(self.model.model, sm.features_matrix(joint))
            p_c, p_m, p_x = (probs[k].tolist() for k in ("c", "m", "x"))
        except Exception:
            for slot, _, _ in ready:
                out[slot] = super().predict_batch([calls[slot]])[0]
            return out
        start = 0
        for slot, summaries, values in ready:
            asset_id, measurements = calls[slot]
            end = start + len(values)
            try:
                out[slot] = self._scored(
                    asset_id, measurements, summaries,
                    p_c[start:end], p_m[start:end], p_x[start:end],
                )  # fmt: skip
            except Exception as exc:
                out[slot] = exc
            start = end
        return out

    def _scored(
        self,
        asset_id: str,
        measurements: Sequence[FlareDay],
        summaries: list[dict[str, Any]],
        p_c: list[float],
        p_m: list[float],
        p_x: list[float],
    ) -> list[Scored]:
        """The items of one request from its days' summaries and coherent probabilities."""
        th = self.thresholds_for(asset_id)
        logged = _DAYS.dump_python(list(measurements), mode="json", exclude_none=True)
        return [
            self._score(m, s, c, pm, px, th, dumped)
            for m, s, c, pm, px, dumped in zip(
                measurements, summaries, p_c, p_m, p_x, logged, strict=True
            )
        ]

    def _score(
        self,
        m: FlareDay,
        summary: dict[str, Any],
        p_c: float,
        p_m: float,
        p_x: float,
        th: AssetThresholds,
        logged: dict[str, Any],
    ) -> Scored:
        p = {
            "c": round(p_c, PROBABILITY_DECIMALS),
            "m": round(p_m, PROBABILITY_DECIMALS),
            "x": round(p_x, PROBABILITY_DECIMALS),
        }
        day = m.timestamp.astimezone(UTC).date()  # sm.utc_day: the schema makes it aware
        forecast_day = day + ONE_DAY
        level, crossings = level_rule(p["m"], p["x"], th)
        classes = class_probabilities(p["c"], p["m"], p["x"])
        likely = most_likely_class(classes)
        target_time = datetime.combine(forecast_day, MIDNIGHT, tzinfo=UTC)
        on = forecast_day.isoformat()
        body: dict[str, Any] = {
            "day": day.isoformat(),
            "forecast_day": on,
            "probability_c_or_above": p["c"],
            "probability_m_or_above": p["m"],
            "probability_x": p["x"],
            "class_probabilities": classes,
            "most_likely_class": likely,
            "radio_blackout_hint": RADIO_BLACKOUT_HINT[likely],
            "crossings": crossings,
            "advice": ADVICE[level],
            "source": "summary" if m.summary is not None else "raw",
            "summary": summary,
        }
        return Scored(
            timestamp=m.timestamp,
            level=level,
            body=body,
            detail=self._detail(level, p, th, on),
            measurement=logged,
            points=[ForecastPoint(self.target.name, FEEDBACK_HORIZON, target_time, p["m"])],
        )

    @staticmethod
    def _detail(level: Level, p: dict[str, float], th: AssetThresholds, on: str) -> LevelDetail:
        """Why the day has its level; ``on`` is the forecast day d+1 (YYYY-MM-DD)."""
        t_m, t_x = th.alerte_probability_m_or_above, th.critique_probability_x
        if level is Level.CRITIQUE:
            return LevelDetail(
                p["x"], UNIT, t_x,
                f"P(X flare on {on}) = {p['x']:.3f} reaches CRITIQUE threshold {t_x:.3f} "
                "(X1 = R3 radio blackout)",
            )  # fmt: skip
        if level is Level.ALERTE:
            return LevelDetail(
                p["m"], UNIT, t_m,
                f"P(>=M flare on {on}) = {p['m']:.3f} reaches ALERTE threshold {t_m:.3f} "
                f"(M1 = R1 radio blackout); P(X) {p['x']:.3f} below {t_x:.3f}",
            )  # fmt: skip
        return LevelDetail(
            p["m"], UNIT, t_m,
            f"P(>=M flare on {on}) = {p['m']:.3f} below ALERTE threshold {t_m:.3f}; "
            f"P(X) {p['x']:.3f} below CRITIQUE threshold {t_x:.3f}",
        )  # fmt: skip

    # -- training and evaluation ------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        path = data_dir / DATA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"training data not found: {path}")
        started = time.perf_counter()
        progress(f"reading {path}")
        table = sm.load_table(path)
        result = md.fit(table, progress)
        elapsed = time.perf_counter() - started
        bundle = compile_parts(md.compiled_parts(result.model, result.check_rows), progress)
        thresholds = result.model.thresholds
        metrics = {
            key: {
                **result.metrics[key],
                "persistence_tss": result.baselines[key]["persistence"]["tss"],
                "persistence": result.baselines[key]["persistence"],
                "climatology": result.baselines[key]["climatology"],
            }
            for key in md.KEYS
        }
        card: dict[str, Any] = {
            "title": self.title,
            "training_data": [
                {
                    "path": str(path),
                    "sha256": sha256_file(path),
                    "rows": len(table),
                    "time_range": {
                        "start": f"{table['date'].iloc[0]:%Y-%m-%d}",
                        "end": f"{table['date'].iloc[-1]:%Y-%m-%d}",
                    },
                }
            ],
            "inputs": [
                {"name": c.name, "unit": c.unit, "model_input": c.model_input}
                for c in sm.SUMMARY_COLUMNS
            ],
            "features": [dict(f) for f in sm.FEATURES],
            "targets": [
                {"name": sm.TARGETS[k], "unit": f"probability of {sm.TARGET_LABELS[k]} on d+1"}
                for k in md.KEYS
            ],
            "metrics": metrics,
            "baselines": {
                name: {key: result.baselines[key][name] for key in md.KEYS}
                for name in ("persistence", "climatology")
            },
            "candidates": result.candidates,
            "climatology": {k: round(v, 6) for k, v in result.model.climatology.items()},
            "validation": result.validation,
            "thresholds": {
                "unit": UNIT,
                "alerte_probability_m_or_above": thresholds["m"],
                "critique_probability_x": thresholds["x"],
                "operating_points": thresholds,
                "rule": (
                    "CRITIQUE when P(X) >= critique_probability_x (max-HSS threshold of P(X) on "
                    "validation), else ALERTE when P(>=M) >= alerte_probability_m_or_above "
                    "(max-TSS threshold of P(>=M) on validation), else NORMAL; "
                    "operating_points are the thresholds TSS/HSS are computed at "
                    "(>=C: max TSS); VIGIE_ASSET_CONFIG overrides per asset"
                ),
            },
            "feedback": {
                "target": self.target.name,
                "horizon": FEEDBACK_HORIZON,
                "live_mae": "mean |outcome (0/1) - P(>=M)| over the observed days",
            },
            "hyperparameters": result.hyperparameters,
            "training_time_s": round(elapsed, 2),
            "compiled": bundle,
        }
        return TrainedModel(model=result.model, card=card)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """design.md section 7 metrics on a CSV with the columns of ``daily_train.csv``.

        ``asset`` is not used: the model is the same for every feed.
        """
        return md.evaluate(model, sm.load_table(data))

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """One ``summary`` day per row of a ``daily_train.csv``-shaped file, in date order,
        ``batch`` days per request (the ``_next_24h`` targets are not sent; the optional
        ``sunspot_number_std`` / ``sunspot_n_obs`` only when the row has them). Default asset:
        ``SUN``."""
        table = sm.load_table(data)
        days = [
            {"timestamp": f"{row['date']:%Y-%m-%d}T00:00:00Z", "summary": _summary_json(row)}
            for row in table.to_dict("records")
        ]
        return replay_windows(asset or REPLAY_ASSET, days, batch)


def _summary_json(row: Mapping[Hashable, Any]) -> dict[str, Any]:
    """The ``summary`` object of one table row (ints where the schema wants ints)."""
    import pandas as pd  # replay only: never in a serving worker

    out: dict[str, Any] = {}
    for col in sm.SUMMARY_COLUMNS:
        value = row.get(col.name)
        if value is None or pd.isna(value):
            continue  # only the optional columns can be absent: load_table checked the others
        out[col.name] = int(value) if col.kind is int else float(value)
    return out
