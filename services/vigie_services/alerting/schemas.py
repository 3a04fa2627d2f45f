"""Request bodies of the alerting API (the responses are in :mod:`.api.responses`).

Every free text ends up in a database column: NUL is refused here (PostgreSQL cannot store it in
text). Values are taken as the OpenAPI schema says and not coerced: a level is one of its names,
a time an RFC 3339 string (a number of seconds is not one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vigie.contract.levels import Level
from vigie.contract.service import StrictModel

# PostgreSQL text columns cannot hold NUL: a client's NUL is a 422, not a database error.
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")]
Channel = Literal["email", "webhook", "push", "sms"]
Language = Literal["fr", "en"]


def _text(value: object) -> object:
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-06-01T10:00:00Z")
    return value


# Validated after json.loads: an enum or a time arrives as a string, which a strict field (see
# StrictModel) would refuse, and a lax time would also take a number as Unix seconds.
LevelName = Annotated[Level, Strict(False)]
Rfc3339 = Annotated[AwareDatetime, Strict(False), BeforeValidator(_text)]


class SubscriberIn(StrictModel):
    name: Name
    channel: Channel
    target: str = Field(
        min_length=1,
        max_length=512,
        pattern=NO_NUL,
        description="email address, webhook URL, ntfy topic (or topic URL), or E.164 phone number",
    )
    services: list[Ident] | None = Field(
        default=None, description="only these services (all if null)"
    )
    assets: list[Ident] | None = Field(default=None, description="only these assets (all if null)")
    min_level: LevelName = Field(default=Level.ALERTE, description="notify from this level up")
    language: Language = "fr"
    enabled: bool = True


class SubscriberPatch(StrictModel):
    name: Name | None = None
    channel: Channel | None = None
    target: str | None = Field(default=None, min_length=1, max_length=512, pattern=NO_NUL)
    services: list[Ident] | None = None
    assets: list[Ident] | None = None
    min_level: LevelName | None = None
    language: Language | None = None
    enabled: bool | None = None


def _given(*fields: tuple[str, str]) -> list[JsonValue]:
    """JSON Schema alternatives "``field`` is present and not null", one per ``(field, type)``."""
    return [{"required": [f], "properties": {f: {"type": t}}} for f, t in fields]


class SilenceIn(StrictModel):
    """What to mute (at least one of service, asset_id, level) and until when (exactly one of
    ends_at, after starts_at, and duration_s)."""

    # The cross-field rules JSON Schema can say, so that clients (and fuzzers) know them.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": _given(("service", "string"), ("asset_id", "string"), ("level", "string")),
            "oneOf": _given(("ends_at", "string"), ("duration_s", "integer")),
        }
    )
    service: Ident | None = None
    asset_id: Ident | None = None
    level: LevelName | None = None
    starts_at: Rfc3339 | None = Field(default=None, description="default: now")
    ends_at: Rfc3339 | None = Field(default=None, description="after starts_at")
    duration_s: int | None = Field(default=None, gt=0, le=90 * 86400)
    comment: str = Field(
        min_length=1, max_length=2000, pattern=NO_NUL, description="why, for the next on-call"
    )

    @model_validator(mode="after")
    def _bounded_and_targeted(self) -> SilenceIn:
        if self.service is None and self.asset_id is None and self.level is None:
            raise ValueError("a silence must match at least one of service, asset_id, level")
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("starts_at")
        if ends_at is not None and starts_at is not None and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``(starts, ends)`` in naive UTC, as stored; ``now`` (naive UTC) when no start is given.

        Clamped to :class:`datetime`'s range: a bound that falls beyond year 9999 (or before
        year 1) once in UTC, or a duration past it, means "for ever" (or "since ever") anyway."""
        starts = _stored(self.starts_at) if self.starts_at else now
        if self.ends_at is not None:
            return starts, _stored(self.ends_at)
        duration = timedelta(seconds=self.duration_s or 0)
        return starts, starts + duration if datetime.max - starts > duration else datetime.max


class AckIn(StrictModel):
    comment: str = Field(default="", max_length=2000, pattern=NO_NUL)


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _stored(ts: datetime) -> datetime:
    """``ts`` in naive UTC, clamped to :class:`datetime`'s range (``9999-12-31T23:00-05:00`` is
    past it in UTC)."""
    try:
        return _naive_utc(ts)
    except OverflowError:
        return datetime.max if ts.year > 1 else datetime.min


def iso(ts: datetime | None) -> str | None:
    """Stored naive-UTC times as RFC 3339 (``2026-06-01T10:00:00Z``, microseconds when any)."""
    return None if ts is None else _naive_utc(ts).isoformat() + "Z"
