"""The contract between alerting and its channels (email, webhook, push, sms)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

CHANNELS = ("email", "webhook", "push", "sms")
LANGUAGES = ("fr", "en")


@dataclass(frozen=True)
class Notification:
    """Everything a channel needs to tell a person (or a system) about one alert transition.

    Stored as JSON in the delivery row when the transition happens, so a retry days later sends
    exactly what the first attempt would have.
    """

    delivery_id: int
    alert_id: int
    transition_id: int
    kind: str  # opened | escalated | de-escalated | resolved | reminder | test
    service: str
    asset_id: str
    level: str  # NORMAL | ALERTE | CRITIQUE, after the transition
    previous_level: str | None
    value: float | None
    unit: str | None
    threshold: float | None
    message: str  # the prediction service's own sentence (English)
    observed_at: datetime
    opened_at: datetime
    resolved_at: datetime | None
    model_version: str
    language: str  # fr | en
    alert_url: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("observed_at", "opened_at", "resolved_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        fields = dict(data)
        for key in ("observed_at", "opened_at", "resolved_at"):
            if fields.get(key) is not None:
                fields[key] = datetime.fromisoformat(fields[key])
        return cls(**fields)


class DeliveryError(Exception):
    """A send failed. ``permanent`` failures (a bad address, a 4xx) are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Notifier(Protocol):
    channel: ClassVar[str]

    async def send(self, notification: Notification, target: str) -> None:
        """Deliver or raise :class:`DeliveryError`; must respect the configured timeout."""
        ...
