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

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigie.contract.batch import Batch, BatchSummary, Outputs, Points, Scores
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
from vigie.models.store import LoadedModel, ModelLoadError
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier import replay, training
from vigie_services.gamma_classifier.consistency import check_events
from vigie_services.gamma_classifier.data import load_events
from vigie_services.gamma_classifier.features import COLUMNS
from vigie_services.gamma_classifier.rules import CODE_DEFAULTS, AssetRules
from vigie_services.gamma_classifier.summary import batch_detail, summary_body

MAX_MM = 1000.0  # generous camera scale: the training data stay within 600 mm
HORIZON = "h0"


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

    def overrides(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)

    @model_validator(mode="after")
    def _ordered(self) -> AssetSettings:
        # with the code's defaults, so a bad file fails start-up (the card is not known yet)
        CODE_DEFAULTS.overridden(self.overrides())
        return self


def level_for(significance: float, alerte_sigma: float, critique_sigma: float) -> Level:
    """CRITIQUE at or above ``critique_sigma``, ALERTE at or above ``alerte_sigma``."""
    if significance >= critique_sigma:
        return Level.CRITIQUE
    if significance >= alerte_sigma:
        return Level.ALERTE
    return Level.NORMAL


class GammaClassifierService(PredictionService[GammaEvent, AssetSettings]):
    name = "gamma-classifier"
    title = "Gamma/hadron classifier (MAGIC telescope)"
    description = __doc__ or ""
    Measurement = GammaEvent
    Prediction = EventPrediction
    AssetSettings = AssetSettings
    target = Target(
        "is_gamma", "1 = gamma, 0 = hadron", "observed class of an event",
        allowed=frozenset({0.0, 1.0}),
    )  # fmt: skip
    # P(gamma) of an event depends on nothing else: the asset's cut is applied in present
    rows_independent = True
    replay_batch = 200  # events per request: the batch the significance is computed on
    #: every asset's rule and cut, resolved when a model is bound
    rules: AssetRules | None = None

    def bind(self, loaded: LoadedModel) -> None:
        model = loaded.model
        if not isinstance(model, clf.GammaModel):
            raise ModelLoadError(
                f"{loaded.path}: artifact is a {type(model).__name__}, not a GammaModel"
            )
        overrides = {asset: s.overrides() for asset, s in self.assets.items()}
        levels = loaded.card.thresholds.get("levels", {})
        self.rules = AssetRules.resolve(self.name, model, levels, overrides)
        super().bind(loaded)

    # -- scoring ----------------------------------------------------------------------------
    def check(self, batch: Batch[GammaEvent]) -> None:
        check_events(batch.matrix(COLUMNS))

    def infer(self, batch: Batch[GammaEvent]) -> Outputs:
        return {"p_gamma": clf.p_gamma(self.model.model, batch.matrix(COLUMNS))}

    def present(self, batch: Batch[GammaEvent], outputs: Outputs) -> Scores:
        if self.rules is None:
            raise RuntimeError("no model bound")
        asset = self.rules.for_asset(batch.asset_id)
        threshold = asset.cut.threshold
        probabilities: list[float] = outputs["p_gamma"].tolist()
        classes = ["gamma" if p >= threshold else "hadron" for p in probabilities]
        excess = asset.excess(len(classes), classes.count("gamma"))
        rule = asset.rule
        level = level_for(excess.significance_sigma, rule.alerte_sigma, rule.critique_sigma)
        detail = batch_detail(excess, level, asset)
        return Scores(
            levels=[level] * len(classes),  # the batch's level, on every item
            items=[
                {"p_gamma": p, "class": c, "probability_threshold": threshold}
                for p, c in zip(probabilities, classes, strict=True)
            ],
            explain=lambda _i: detail,
            points=Points.one_per_row(self.target.name, HORIZON, batch.times, probabilities),
            summary=BatchSummary(
                summary_body(excess, level, asset, detail), detail, max(batch.times)
            ),
        )

    # -- the vigie command ------------------------------------------------------------------
    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        return training.train(data_dir, self.target.name, progress)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        """Design metrics on a labelled CSV; accuracy and F1 at P(gamma) >= 0.5 (any asset)."""
        values, y = load_events(data)
        return clf.evaluate(model, values, y)

    def replay_requests(self, data: Path, asset: str | None, batch: int) -> Iterator[ReplayRequest]:
        """Batches of ``batch`` events with synthetic arrival times (see :mod:`.replay`);
        default asset ``MAGIC-1``."""
        return replay.replay_requests(data, asset, batch)
