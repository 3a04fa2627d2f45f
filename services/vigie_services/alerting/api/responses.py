"""Response models of the alerting API, read from the ORM rows (``from_attributes``).

They are the contract published in ``/openapi.json``: FastAPI checks every answer against them.
Times are stored naive UTC and written as RFC 3339 with a ``Z`` (:func:`..schemas.iso`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, computed_field

from vigie.contract.levels import Level
from vigie_services.alerting.lifecycle import Kind
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.schemas import Channel, Language, iso

UtcTime = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-06-01T10:00:00Z"]}),
]
AlertStatus = Literal["open", "resolved"]
DeliveryStatus = Literal["pending", "sending", "retrying", "sent", "dead", "suppressed"]
AttemptOutcome = Literal["sent", "retrying", "dead"]


class Row(BaseModel):
    """A model read from an ORM row's attributes: ``AlertOut.model_validate(alert)``."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def from_row(cls, row: object, **extra: Any) -> Self:
        """From ``row``'s attributes plus ``extra``, the fields the row does not have (the
        rows have no relationships: a caller reads an alert's history and passes it here)."""
        own = {name: getattr(row, name) for name in cls.model_fields if name not in extra}
        return cls.model_validate({**own, **extra})


class AlertOut(Row):
    id: int
    service: str
    asset_id: str
    status: AlertStatus
    level: Level = Field(description="current level while open, the last one once resolved")
    peak_level: Level
    opened_at: UtcTime
    resolved_at: UtcTime | None
    acknowledged_at: UtcTime | None
    acknowledged_by: str | None
    ack_comment: str | None
    value: float | None
    unit: str | None
    threshold: float | None
    message: str
    model_version: str


class TransitionOut(Row):
    id: int
    kind: Kind
    from_level: Level | None
    to_level: Level
    at: UtcTime = Field(description="when alerting recorded it")
    observed_at: UtcTime = Field(description="time of the measurement that caused it")
    value: float | None
    message: str
    actor: str | None = Field(description="who acknowledged (acknowledged transitions)")
    event_id: str | None = Field(description="the level event that caused it")


class AttemptOut(Row):
    number: int
    at: UtcTime
    outcome: AttemptOutcome
    reason: str | None
    duration_ms: float


class DeliveryOut(Row):
    id: int
    alert_id: int
    transition_id: int
    subscriber_id: int
    channel: Channel
    target: str
    status: DeliveryStatus
    reason: str | None = Field(description="why it failed or was suppressed")
    attempts: int
    next_attempt_at: UtcTime
    created_at: UtcTime
    sent_at: UtcTime | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut] = Field(description="every attempt, oldest first")


class AlertDetail(AlertOut):
    transitions: list[TransitionOut] = Field(description="oldest first")
    deliveries: list[DeliveryDetail] = Field(description="oldest first, with their attempts")


class SubscriberOut(Row):
    id: int
    name: str
    channel: Channel
    target: str
    services: list[str] | None = Field(description="only these services (all if null)")
    assets: list[str] | None = Field(description="only these assets (all if null)")
    min_level: Level
    language: Language
    enabled: bool
    created_at: UtcTime
    updated_at: UtcTime


class SilenceOut(Row):
    id: int
    service: str | None
    asset_id: str | None
    level: Level | None
    starts_at: UtcTime
    ends_at: UtcTime
    author: str
    comment: str
    created_at: UtcTime
    expired_at: UtcTime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        """Muting now: not expired and now within [starts_at, ends_at)."""
        return self.expired_at is None and self.starts_at <= utcnow() < self.ends_at


class NotificationSent(BaseModel):
    sent: Literal[True]
    channel: Channel
    target: str


class NotificationFailed(BaseModel):
    sent: Literal[False]
    reason: str
    permanent: bool | None = Field(
        default=None, description="retrying will not help (absent when no notifier was tried)"
    )


R = TypeVar("R", bound=Row)


class Page(BaseModel, Generic[R]):
    """A page, newest first; ask for the next with ``cursor=next_cursor``."""

    items: list[R]
    next_cursor: int | None = Field(description="null on the last page")

    @classmethod
    def of(cls, rows: Sequence[Any], limit: int) -> Self:
        """The page of ``rows`` (ORM rows, at most ``limit``): full means there may be more."""
        return cls(items=list(rows), next_cursor=rows[-1].id if len(rows) == limit else None)


class AlertPage(Page[AlertOut]):
    pass


class DeliveryPage(Page[DeliveryOut]):
    pass


class SilenceList(BaseModel):
    items: list[SilenceOut]


class SubscriberList(BaseModel):
    items: list[SubscriberOut]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
