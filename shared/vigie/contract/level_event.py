"""The level event (design.md section 3): what a prediction service says of one asset per predict
call, on the stream ``vigie:levels`` (field ``event``) and the channel ``vigie:levels:<service>``.

Publishers (:mod:`vigie.io.level_publisher`) and consumers (alerting) share this model only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from pydantic import AwareDatetime, BaseModel

from vigie.contract.ids import new_uuid
from vigie.contract.levels import Level


class LevelEvent(BaseModel):
    event_id: str
    service: str
    asset_id: str
    level: Level
    observed_at: AwareDatetime
    emitted_at: AwareDatetime
    value: float | None
    unit: str | None
    threshold: float | None
    model_version: str
    message: str
    request_id: str | None = None

    @classmethod
    def new(cls, **fields: object) -> LevelEvent:
        return cls.model_validate(
            {"event_id": new_uuid(), "emitted_at": datetime.now(UTC), **fields}
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def live_channel(service: str) -> str:
    return f"vigie:levels:{service}"
