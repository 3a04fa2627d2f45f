"""The HTTP schemas of a prediction service (design.md section 2): what the runtime's routes
read and answer. The predict body and answer are built per service from its ``Measurement``
and ``Prediction`` models."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from vigie.contract.levels import Level
from vigie.contract.service import PredictionService, Rfc3339, StrictModel, Target

ASSET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
AssetId = Annotated[
    str,
    Field(pattern=ASSET_ID_PATTERN, description="asset identifier (1-64 of A-Z a-z 0-9 _ . : -)"),
]


def predict_models(
    service: PredictionService[Any, Any], max_batch: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """The predict request (``asset_id`` + 1..``max_batch`` measurements) and answer models."""
    measurement = service.Measurement
    # A type built at run time: Any for the checker, a real annotation for pydantic.
    batch: Any = Annotated[list[measurement], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    request = create_model(
        f"{measurement.__name__}Batch",
        __base__=StrictModel,
        asset_id=(AssetId, ...),
        measurements=(batch, ...),
    )
    item = service.Prediction
    response = create_model(
        f"{item.__name__}Response",
        __config__=ConfigDict(extra="allow"),
        service=(str, ...),
        model_version=(str, ...),
        asset_id=(str, ...),
        request_id=(str, ...),
        level=(Level, ...),
        predictions=(list[item], ...),  # type: ignore[valid-type]
        summary=(dict[str, Any] | None, Field(None, description="batch-level result, if any")),
    )
    return request, response


class ObservationIn(StrictModel):
    timestamp: Rfc3339 = Field(description="time the observed value is about")
    value: float = Field(description="observed value, in the unit of the service's target")
    target: str | None = Field(default=None, description="observed quantity (default: the target)")


class FeedbackRequest(StrictModel):
    asset_id: AssetId
    observations: list[ObservationIn] = Field(min_length=1)


def _one_of(allowed: list[float], value: float) -> float:
    if value not in allowed:
        raise ValueError(f"must be one of {allowed}")
    return value


def feedback_model(target: Target, max_batch: int) -> type[FeedbackRequest]:
    """The feedback body of a service: its target's name and values are part of the schema
    (bounds, or the allowed outcomes), so a client sees them in the OpenAPI document."""
    value: Any = float
    if target.allowed is not None:
        allowed = sorted(target.allowed)
        enum: dict[str, Any] = {"enum": allowed}
        value = Annotated[
            float,
            Field(json_schema_extra=enum),
            AfterValidator(partial(_one_of, allowed)),
        ]
    elif target.bounds is not None:
        value = Annotated[float, Field(ge=target.bounds[0], le=target.bounds[1])]
    target_name: Any = Literal[target.name] | None
    observation = create_model(
        "ObservationIn",
        __base__=ObservationIn,
        value=(value, Field(description=f"observed {target.description or target.name}, "
                                        f"{target.unit}")),
        target=(target_name, Field(None, description=(
            f"observed quantity (default and only: {target.name})"))),
    )  # fmt: skip
    observations: Any = Annotated[list[observation], Field(min_length=1, max_length=max_batch)]
    return create_model(
        "FeedbackRequest", __base__=FeedbackRequest, observations=(observations, ...)
    )


class ObservationOut(BaseModel):
    timestamp: datetime
    target: str
    matched: int = Field(description="forecast points this observation was matched to")


class FeedbackResponse(BaseModel):
    asset_id: str
    received: int
    matched_forecasts: int
    observations: list[ObservationOut]
    live_mae: dict[str, float] = Field(description="recent MAE of the asset per horizon")


class StoredPrediction(BaseModel):
    cursor: int
    prediction_id: str
    timestamp: datetime
    level: Level
    model_version: str
    request_id: str
    measurement: dict[str, Any]
    prediction: dict[str, Any]
    created_at: datetime


class PredictionsPage(BaseModel):
    asset_id: str
    items: list[StoredPrediction]
    next_cursor: int | None = Field(description="cursor of the next page; null on the last")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    service: str
    model_version: str
