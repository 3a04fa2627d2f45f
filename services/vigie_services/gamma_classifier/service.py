"""gamma-classifier: keep the gamma-ray showers of a Cherenkov telescope, reject the hadrons.

A request carries a batch of events from one telescope (the asset, e.g. ``MAGIC-1``): each event
is its arrival time and the 10 Hillas parameters of its shower image. Every event gets
``p_gamma`` = P(gamma) and a ``class`` (``gamma`` / ``hadron``) from a cut on ``p_gamma`` chosen
for a hadron false-positive rate (default 5 %; the cut and its measured rates are in the model
card under ``thresholds``). Accepted ranges cover every event of the MAGIC training data with a
margin and refuse impossible ones: fLength > 0, 0 <= fWidth <= fLength, 0 < fSize <= 8,
0 < fConc <= 1, 0 <= fConc1 <= fConc, |fAsym|, |fM3Long|, |fM3Trans| <= 1000 mm,
0 <= fAlpha <= 90 degrees, 0 <= fDist <= 1000 mm.

Batch summary and level
-----------------------
The response's ``summary`` tests the batch for a gamma excess with Li & Ma (1983, ApJ 272, 317)
eq. 17::

    S = sqrt(2) * sqrt( N_on  ln[(1 + alpha) / alpha * N_on / (N_on + N_off)]
                      + N_off ln[(1 + alpha) * N_off / (N_on + N_off)] )

* ``N_on`` = events classified gamma, ``N_off`` = events classified hadron;
* ``alpha = f / (1 - f)`` with ``f`` the hadron false-positive rate of the cut: under the
  background-only hypothesis every event lands ON with probability ``f``;
* expected background (misclassified hadrons) ``B = f * N_off / (1 - f) = alpha * N_off``
  (``N_off / (1 - f)`` estimates the hadrons of the batch), excess ``N_on - B``.

``S`` is signed: negative when ``N_on < B`` (a deficit), 0 when equal; a term whose count is 0
contributes 0, so a batch with no event classified gamma has ``S = -sqrt(2 N_off ln(1 + alpha))``.
Details and the estimated number of gammas are in :mod:`.significance`.

Level rule (of the batch; every item carries it): CRITIQUE when ``S >= critique_sigma``
(default 5), ALERTE when ``S >= alerte_sigma`` (default 3): a flaring source candidate;
otherwise NORMAL (including every deficit). The level event's value is ``S`` (unit ``sigma``)
and its threshold the one crossed (``alerte_sigma`` when NORMAL). Per asset, with
``VIGIE_ASSET_CONFIG`` (any key may be omitted; any valid asset id works without one)::

    {"gamma-classifier": {"MAGIC-1": {"hadron_fpr": 0.01, "alerte_sigma": 4, "critique_sigma": 6}}}

Feedback
--------
Each event is logged with one forecast point: target ``is_gamma``, horizon ``h0``, target time =
the event's timestamp, value = ``p_gamma``. ``POST /v1/feedback`` with the observed ``is_gamma``
(1 gamma, 0 hadron) at that timestamp scores it: the live MAE of horizon ``h0`` is the mean
``|is_gamma - p_gamma|``, i.e. one minus the mean probability given to the true class. Feedback
matches by asset and timestamp, so events of one telescope should have distinct timestamps (one
observation updates every event logged at its time).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vigie.contract.errors import ConfigError, Unprocessable, field_error
from vigie.contract.levels import Level
from vigie.contract.service import (
    BatchSummary,
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
from vigie.models.store import LoadedModel, ModelLoadError, sha256_file
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.significance import BatchExcess, batch_excess

FloatArray = npt.NDArray[np.float64]

DEFAULT_ALERTE_SIGMA = 3.0
DEFAULT_CRITIQUE_SIGMA = 5.0
MAX_MM = 1000.0  # generous camera scale: the training data stay within 600 mm
HORIZON = "h0"
# Replayed events: the CSV has no arrival times, so they are made up (see replay_requests).
REPLAY_ASSET = "MAGIC-1"
REPLAY_START = datetime(2004, 1, 1, tzinfo=UTC)  # the data set's year (Monte Carlo events)
REPLAY_EVENT_INTERVAL = timedelta(seconds=1)

RECOMMENDATIONS = {
    Level.NORMAL: "No significant gamma excess in this batch: keep observing.",
    Level.ALERTE: (
        "Gamma excess above the ALERTE significance: a flaring source candidate. Check the "
        "pointing, weather and trigger rates, and keep accumulating events on the source."
    ),
    Level.CRITIQUE: (
        "Gamma excess above the CRITIQUE significance: a flaring source candidate. Confirm "
        "data quality (pointing, weather, trigger) and notify the follow-up (alert) desk."
    ),
}


class GammaEvent(MeasurementBase):
    """One shower image of the telescope, described by its Hillas parameters."""

    fLength: float = Field(  # noqa: N815 (the data set's name)
        gt=0, le=MAX_MM, description="major axis of the shower ellipse, mm"
    )
    fWidth: float = Field(  # noqa: N815 (the data set's name)
        ge=0, le=MAX_MM, description="minor axis of the shower ellipse, mm (at most fLength)"
    )
    fSize: float = Field(  # noqa: N815 (the data set's name)
        gt=0, le=8, description="10-log of the sum of the content of all pixels, log10(#phe)"
    )
    fConc: float = Field(  # noqa: N815 (the data set's name)
        gt=0, le=1, description="ratio of the sum of the two highest pixels over fSize"
    )
    fConc1: float = Field(  # noqa: N815 (the data set's name)
        ge=0, le=1, description="ratio of the highest pixel over fSize (at most fConc)"
    )
    fAsym: float = Field(  # noqa: N815 (the data set's name)
        ge=-MAX_MM,
        le=MAX_MM,
        description="distance from the highest pixel to the centre, projected onto the major "
        "axis, mm (signed)",
    )
    fM3Long: float = Field(  # noqa: N815 (the data set's name)
        ge=-MAX_MM,
        le=MAX_MM,
        description="3rd root of the third moment along the major axis, mm (signed)",
    )
    fM3Trans: float = Field(  # noqa: N815 (the data set's name)
        ge=-MAX_MM,
        le=MAX_MM,
        description="3rd root of the third moment along the minor axis, mm (signed)",
    )
    fAlpha: float = Field(  # noqa: N815 (the data set's name)
        ge=0, le=90, description="angle of the major axis with the vector to the origin, degrees"
    )
    fDist: float = Field(  # noqa: N815 (the data set's name)
        ge=0, le=MAX_MM, description="distance from the origin to the centre of the ellipse, mm"
    )


# What predict reads of an event, in one C call per event, and how it logs a batch of them.
_VALUES = operator.attrgetter(*clf.COLUMNS)
_EVENTS: TypeAdapter[list[GammaEvent]] = TypeAdapter(list[GammaEvent])
_LENGTH, _WIDTH, _CONC, _CONC1 = (
    clf.COLUMNS.index(c) for c in ("fLength", "fWidth", "fConc", "fConc1")
)


class EventPrediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    timestamp: datetime = Field(description="arrival time of the event")
    level: Level = Field(description="the batch's level (see summary)")
    p_gamma: float = Field(ge=0, le=1, description="probability that the event is a gamma ray")
    class_: Literal["gamma", "hadron"] = Field(
        alias="class", description="gamma when p_gamma >= probability_threshold"
    )
    probability_threshold: float = Field(description="the asset's operating cut on p_gamma")


class AssetSettings(StrictModel):
    """Per-asset settings; unset keys take the model card's defaults."""

    hadron_fpr: float | None = Field(
        default=None, ge=0.001, le=0.5, description="target hadron false-positive rate of the cut"
    )
    alerte_sigma: float | None = Field(default=None, gt=0, le=100, description="ALERTE at or above")
    critique_sigma: float | None = Field(
        default=None, gt=0, le=100, description="CRITIQUE at or above"
    )


class Rule(StrictModel):
    """The resolved settings of one asset."""

    hadron_fpr: float = Field(ge=0.001, le=0.5)
    alerte_sigma: float = Field(gt=0)
    critique_sigma: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Rule:
        if self.critique_sigma <= self.alerte_sigma:
            raise ValueError("critique_sigma must be above alerte_sigma")
        return self


def level_for(significance: float, alerte_sigma: float, critique_sigma: float) -> Level:
    """CRITIQUE at or above ``critique_sigma``, ALERTE at or above ``alerte_sigma``."""
    if significance >= critique_sigma:
        return Level.CRITIQUE
    if significance >= alerte_sigma:
        return Level.ALERTE
    return Level.NORMAL


def _resolve(defaults: Rule, settings: AssetSettings) -> Rule:
    overrides = {k: v for k, v in settings.model_dump().items() if v is not None}
    return Rule.model_validate({**defaults.model_dump(), **overrides})


class GammaClassifierService(PredictionService[GammaEvent]):
    name = "gamma-classifier"
    title = "Gamma/hadron classifier (MAGIC telescope)"
    description = __doc__ or ""
    Measurement = GammaEvent
    Prediction = EventPrediction
    target = Target(
        "is_gamma", "1 = gamma, 0 = hadron", "observed class of an event",
        allowed=frozenset({0.0, 1.0}),
    )  # fmt: skip
    replay_batch = 200  # events per request: the batch the significance is computed on

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        code_defaults = Rule(
            hadron_fpr=clf.DEFAULT_HADRON_FPR,
            alerte_sigma=DEFAULT_ALERTE_SIGMA,
            critique_sigma=DEFAULT_CRITIQUE_SIGMA,
        )
        try:
            self._configured = {
                asset: AssetSettings.model_validate(cfg) for asset, cfg in self.asset_config.items()
            }
            for settings_ in self._configured.values():
                _resolve(code_defaults, settings_)  # fail at start-up, not at the first request
        except ValidationError as exc:
            raise ConfigError(f"VIGIE_ASSET_CONFIG [{self.name}]: {exc}") from exc
        self._rules: dict[str, Rule] = {}  # "" = any asset without configuration
        self._cuts: dict[str, clf.OperatingPoint] = {}

    def bind(self, loaded: LoadedModel) -> None:
        model = loaded.model
        if not isinstance(model, clf.GammaModel):
            raise ModelLoadError(
                f"{loaded.path}: artifact is a {type(model).__name__}, not a GammaModel"
            )
        levels = loaded.card.thresholds.get("levels", {})
        defaults = Rule(
            hadron_fpr=model.default_fpr,
            alerte_sigma=levels.get("alerte_sigma", DEFAULT_ALERTE_SIGMA),
            critique_sigma=levels.get("critique_sigma", DEFAULT_CRITIQUE_SIGMA),
        )
        # Every asset's rule and cut are resolved once here, so a configured hadron_fpr that the
        # validation sample cannot support keeps the service unready, with the reason.
        rules: dict[str, Rule] = {}
        cuts: dict[str, clf.OperatingPoint] = {}
        for asset, settings_ in [("", AssetSettings()), *self._configured.items()]:
            try:
                rules[asset] = _resolve(defaults, settings_)
                cuts[asset] = model.operating_point(rules[asset].hadron_fpr)
            except (ValueError, ValidationError) as exc:
                raise ModelLoadError(
                    f"{self.name}: no usable operating point for asset {asset or '(default)'}: "
                    f"{exc}"
                ) from exc
        self._rules, self._cuts = rules, cuts
        super().bind(loaded)

    # -- serving ----------------------------------------------------------------------------
    def rule(self, asset_id: str) -> Rule:
        """The asset's settings (the defaults for an asset without configuration)."""
        return self._rules.get(asset_id, self._rules[""])

    def cut(self, asset_id: str) -> clf.OperatingPoint:
        """The asset's operating cut on P(gamma)."""
        return self._cuts.get(asset_id, self._cuts[""])

    @staticmethod
    def _check_consistency(events: Sequence[GammaEvent], values: FloatArray | None = None) -> None:
        """422 naming every event whose width exceeds its length or whose fConc1 exceeds fConc;
        ``values`` are the events' :data:`~.classifier.COLUMNS` (checked in one numpy pass)."""
        if values is None:
            values = np.array([_VALUES(e) for e in events], dtype=np.float64)
            values = values.reshape(len(events), len(clf.COLUMNS))
        bad = (values[:, _WIDTH] > values[:, _LENGTH]) | (values[:, _CONC1] > values[:, _CONC])
        if not bad.any():
            return
        details = []
        for i in np.flatnonzero(bad).tolist():
            e = events[i]
            if e.fWidth > e.fLength:
                details.append(
                    field_error(
                        ("body", "measurements", i, "fWidth"),
                        f"the minor axis fWidth ({e.fWidth} mm) exceeds the major axis fLength "
                        f"({e.fLength} mm)",
                        "width_above_length",
                    )
                )
            if e.fConc1 > e.fConc:
                details.append(
                    field_error(
                        ("body", "measurements", i, "fConc1"),
                        f"fConc1 ({e.fConc1}, highest pixel) exceeds fConc ({e.fConc}, two "
                        "highest pixels)",
                        "conc1_above_conc",
                    )
                )
        first = details[0]
        message = f"{first['field']}: {first['message']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        raise Unprocessable(message, details=details)

    def predict(self, asset_id: str, measurements: Sequence[GammaEvent]) -> list[Scored]:
        # One pass over the events for the values, one numpy pass for the checks and the
        # features, one model call, one serializer call for the logged measurements.
        values = self._values(measurements)
        probabilities = clf.p_gamma(self.model.model, values).tolist()
        return self._scored(asset_id, measurements, probabilities)

    def predict_batch(
        self, calls: Sequence[tuple[str, Sequence[GammaEvent]]]
    ) -> list[list[Scored] | Exception]:
        """Micro-batching: the events of every call through ONE model call (features and the
        compiled forest for all rows at once), then each call scored as :meth:`predict` scores
        it. P(gamma) of an event does not depend on the other rows, so every call gets what
        :meth:`predict` would give it (but for the last bit of a float64 P(gamma) from gradient
        boosting: ONNX Runtime's Sigmoid is vectorised over several rows, scalar for one, as
        within a request of several events); a call's 422 (inconsistent events) is in its slot
        only. Should the joint model call fail, each call runs alone, as :meth:`predict`."""
        out: list[list[Scored] | Exception] = []
        ready: list[tuple[int, FloatArray]] = []  # (slot, values) of the calls that checked out
        for _asset_id, measurements in calls:
            try:
                values = self._values(measurements)
            except Exception as exc:
                out.append(exc)
                continue
            ready.append((len(out), values))
            out.append([])
        if not ready:
            return out
        try:
            joint = clf.p_gamma(self.model.model, np.concatenate([v for _, v in ready])).tolist()
        except Exception:
            for slot, _ in ready:
                out[slot] = super().predict_batch([calls[slot]])[0]
            return out
        start = 0
        for slot, values in ready:
            asset_id, measurements = calls[slot]
            end = start + len(values)
            try:
                out[slot] = self._scored(asset_id, measurements, joint[start:end])
            except Exception as exc:
                out[slot] = exc
            start = end
        return out

    def _values(self, measurements: Sequence[GammaEvent]) -> FloatArray:
        """The events' :data:`~.classifier.COLUMNS` ``(n, 10)``; 422 for inconsistent events."""
        values = np.array([_VALUES(e) for e in measurements], dtype=np.float64)
        values = values.reshape(len(measurements), len(clf.COLUMNS))
        self._check_consistency(measurements, values)
        return values

    def _scored(
        self, asset_id: str, measurements: Sequence[GammaEvent], probabilities: list[float]
    ) -> list[Scored]:
        """The items of one request from its events' P(gamma)."""
        cut = self.cut(asset_id)
        threshold = cut.threshold
        gammas = sum(p >= threshold for p in probabilities)
        _, level, detail = self._batch(asset_id, len(probabilities), gammas)
        logged = _EVENTS.dump_python(list(measurements), mode="json")
        target = self.target.name
        return [
            Scored(
                timestamp=e.timestamp,
                level=level,
                body={
                    "p_gamma": p,
                    "class": "gamma" if p >= threshold else "hadron",
                    "probability_threshold": threshold,
                },
                detail=detail,
                measurement=dumped,
                points=[ForecastPoint(target, HORIZON, e.timestamp, p)],
            )
            for e, p, dumped in zip(measurements, probabilities, logged, strict=True)
        ]

    def _batch(
        self, asset_id: str, events: int, gammas: int
    ) -> tuple[BatchExcess, Level, LevelDetail]:
        rule = self.rule(asset_id)
        cut = self.cut(asset_id)
        excess = batch_excess(events, gammas, cut.hadron_fpr, cut.gamma_efficiency)
        s = excess.significance_sigma
        level = level_for(s, rule.alerte_sigma, rule.critique_sigma)
        summary = (
            f"{gammas} of {events} events classified gamma, expected background "
            f"{excess.expected_background:.1f}, excess {excess.excess:.1f}: {s:.2f} sigma"
        )
        if level is Level.NORMAL:
            threshold = rule.alerte_sigma
            message = f"{summary}, below ALERTE {threshold:g} sigma"
        else:
            threshold = rule.critique_sigma if level is Level.CRITIQUE else rule.alerte_sigma
            message = f"flaring source candidate: {summary} reaches {level} {threshold:g} sigma"
        return excess, level, LevelDetail(s, "sigma", threshold, message)

    def summarize(self, asset_id: str, scored: list[Scored]) -> BatchSummary | None:
        gammas = sum(s.body["class"] == "gamma" for s in scored)
        excess, level, detail = self._batch(asset_id, len(scored), gammas)
        rule = self.rule(asset_id)
        cut = self.cut(asset_id)
        body = {
            **excess.as_dict(),
            "level": level,
            "alerte_sigma": rule.alerte_sigma,
            "critique_sigma": rule.critique_sigma,
            "probability_threshold": cut.threshold,
            "target_hadron_fpr": cut.target_fpr,
            "message": detail.message,
            "recommendation": RECOMMENDATIONS[level],
            "method": (
                "Li & Ma (1983) eq. 17 with N_on = events classified gamma, N_off = events "
                "classified hadron, alpha = hadron_fpr / (1 - hadron_fpr)"
            ),
        }
        return BatchSummary(body=body, detail=detail, timestamp=max(s.timestamp for s in scored))

    # -- training and evaluation ------------------------------------------------------------
    def data_file(self, data_dir: Path) -> Path:
        path = data_dir / "gamma" / "train.csv"
        if not path.is_file():
            raise FileNotFoundError(f"training data not found: {path}")
        return path

    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        path = self.data_file(data_dir)
        started = time.perf_counter()
        progress(f"reading {path}")
        values, y = clf.load_events(path)
        result = clf.fit(values, y, progress)
        elapsed = time.perf_counter() - started
        bundle = compile_parts(clf.compiled_parts(result.model, result.check_rows), progress)
        card: dict[str, Any] = {
            "title": self.title,
            "training_data": [{"path": str(path), "sha256": sha256_file(path), "rows": len(y)}],
            "class_counts": {"gamma": int(y.sum()), "hadron": int(len(y) - y.sum())},
            "inputs": [{"name": n, "unit": u, "description": d} for n, u, d in clf.INPUTS],
            "features": result.features,
            "targets": [{"name": self.target.name, "unit": "P(gamma); observed 1 gamma, 0 hadron"}],
            "positive_class": "gamma (class g)",
            "metrics": result.metrics,
            "baselines": result.baselines,
            "validation": result.validation,
            "thresholds": {
                **result.thresholds,
                "levels": {
                    "unit": "sigma",
                    "alerte_sigma": DEFAULT_ALERTE_SIGMA,
                    "critique_sigma": DEFAULT_CRITIQUE_SIGMA,
                    "significance": (
                        "Li & Ma (1983) eq. 17, N_on = events classified gamma, N_off = events "
                        "classified hadron, alpha = f / (1 - f), f = hadron_fpr of the cut"
                    ),
                },
            },
            "hyperparameters": result.hyperparameters,
            "training_time_s": round(elapsed, 2),
            "compiled": bundle,
        }
        return TrainedModel(model=result.model, card=card)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """Design metrics on a labelled CSV; accuracy and F1 at P(gamma) >= 0.5 (any asset)."""
        values, y = clf.load_events(data)
        return clf.evaluate(model, values, y)

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Batches of ``batch`` events in file order (the ``class`` column is not sent). The
        file has no arrival times, so events get synthetic ones: ``REPLAY_START``
        (2004-01-01T00:00:00Z) and then one every ``REPLAY_EVENT_INTERVAL`` (1 s), distinct and
        increasing as feedback needs them. Default asset: ``MAGIC-1``."""
        values, _ = clf.load_events(data)
        events = [
            {
                "timestamp": (REPLAY_START + i * REPLAY_EVENT_INTERVAL).isoformat(),
                **dict(zip(clf.COLUMNS, row, strict=True)),
            }
            for i, row in enumerate(values.tolist())
        ]
        return replay_windows(asset or REPLAY_ASSET, events, batch)
