"""Request bodies of the alerting API (responses are plain dicts built in :mod:`api`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from vigie.contract.levels import Level
from vigie.contract.service import StrictModel

Name = Annotated[str, Field(min_length=1, max_length=128)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")]
Channel = Literal["email", "webhook", "push", "sms"]
Language = Literal["fr", "en"]


class SubscriberIn(StrictModel):
    name: Name
    channel: Channel
    target: str = Field(
        min_length=1,
        max_length=512,
        description="email address, webhook URL, ntfy topic (or topic URL), or E.164 phone number",
    )
    services: list[Ident] | None = Field(
        default=None, description="only these services (all if null)"
    )
    assets: list[Ident] | None = Field(default=None, description="only these assets (all if null)")
    min_level: Level = Field(default=Level.ALERTE, description="notify from this level up")
    language: Language = "fr"
    enabled: bool = True


class SubscriberPatch(StrictModel):
    name: Name | None = None
    channel: Channel | None = None
    target: str | None = Field(default=None, min_length=1, max_length=512)
    services: list[Ident] | None = None
    assets: list[Ident] | None = None
    min_level: Level | None = None
    language: Language | None = None
    enabled: bool | None = None


class SilenceIn(StrictModel):
    service: Ident | None = None
    asset_id: Ident | None = None
    level: Level | None = None
    starts_at: AwareDatetime | None = Field(default=None, description="default: now")
    ends_at: AwareDatetime | None = None
    duration_s: int | None = Field(default=None, gt=0, le=90 * 86400)
    comment: str = Field(min_length=1, max_length=2000, description="why, for the next on-call")

    @model_validator(mode="after")
    def _bounded_and_targeted(self) -> SilenceIn:
        if self.service is None and self.asset_id is None and self.level is None:
            raise ValueError("a silence must match at least one of service, asset_id, level")
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        if (
            self.ends_at is not None
            and self.starts_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise ValueError("ends_at must be after starts_at")
        return self


class AckIn(StrictModel):
    comment: str = Field(default="", max_length=2000)


def iso(ts: datetime | None) -> str | None:
    """Stored naive-UTC times as RFC 3339."""
    return None if ts is None else ts.isoformat() + "Z"
