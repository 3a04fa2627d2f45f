"""Settings of the alerting process: the shared ones plus channels, retries and reminders."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from vigie.settings import VigieSettings


class AlertingSettings(VigieSettings):
    """``VIGIE_*`` environment variables of the alerting service (one object per process)."""

    consumer_group: str = "alerting"
    consumer_name: str | None = Field(default=None, description="default: host-pid")
    alerts_stream: str = "vigie:alerts"
    alerts_channel: str = "vigie:alerts:live"
    claim_idle_ms: Annotated[int, Field(ge=100)] = 30_000
    read_batch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=500, description="level events read, applied and committed together"
    )
    read_linger_ms: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=20,
        description="after a batch smaller than read_batch, wait this long before reading again: "
        "a steady flow of events is applied in batches, not one transaction per event",
    )
    processed_retention_s: Annotated[float, Field(ge=3600)] = Field(
        default=7 * 86_400,
        description="how long an event id is remembered against redelivery (processed_events); "
        "must exceed how long an entry can stay pending in the stream",
    )

    repeat_interval_s: Annotated[float, Field(gt=0)] = 4 * 3600
    reminder_check_s: Annotated[float, Field(gt=0)] = 30.0

    retry_base_s: Annotated[float, Field(gt=0)] = 2.0
    retry_max_s: Annotated[float, Field(gt=0)] = 600.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    delivery_poll_s: Annotated[float, Field(gt=0)] = 0.2
    channel_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    send_timeout_s: Annotated[float, Field(gt=0)] = 10.0

    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "vigie@localhost"

    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing webhook bodies (X-Vigie-Signature)"
    )
    ntfy_url: str = Field(default="https://ntfy.sh", description="ntfy server; target = topic")
    ntfy_token: SecretStr | None = None
    sms_gateway_url: str | None = Field(default=None, description="HTTP SMS gateway endpoint")
    sms_body_template: str = Field(
        default='{"to": "$to", "text": "$text"}',
        description="body POSTed to the gateway; $to and $text are substituted (JSON-escaped)",
    )
    sms_auth_header: SecretStr | None = None
    public_url: str = Field(
        default="http://127.0.0.1:8080/alerting", description="base URL used in links to alerts"
    )
