"""Alerting under gunicorn with a real Redis, a real webhook receiver and an SMTP server; and
its database, migrated, for the tests that call its processing directly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.receivers import HttpReceiver, SmtpSink
from tests.support.servers import RedisServer, ServiceProcess, free_port, wait_until
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.contract.level_event import LevelEvent
from vigie_services.alerting.db import make_engine, migrate

SCOPES = "alerts:read alerts:ack subscribers:admin"
WEBHOOK_SECRET = "test-webhook-secret"
T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


@dataclass
class Alerting:
    root: Path
    env: dict[str, str]
    redis: RedisServer
    webhook: HttpReceiver
    smtp_port: int
    service: ServiceProcess | None = None
    clock: dict[str, int] = field(default_factory=dict)  # events sent per asset
    subscribers: int = 0

    def start(self) -> Alerting:
        self.service = ServiceProcess("alerting", self.env, self.root / "alerting.log", workers=1)
        self.service.start()
        return self

    def token(self, scopes: str = SCOPES) -> str:
        return issue_token(
            load_signing_key(self.root / "keys"), sub="ops", scopes=scopes.split(), ttl_s=900
        )

    def client(self) -> httpx.Client:
        assert self.service is not None
        return httpx.Client(
            base_url=self.service.url,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token()}"},
        )

    def subscribe(self, channel: str, target: str, **fields: Any) -> dict[str, Any]:
        self.subscribers += 1
        body = {"name": f"{channel}-{self.subscribers}", "channel": channel,
                "target": target, "language": "en", "min_level": "NORMAL", **fields}  # fmt: skip
        with self.client() as c:
            r = c.post("/v1/subscribers", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def event(self, level: str, asset: str = "T1", service: str = "turbine-nox") -> LevelEvent:
        """A level event, each one observed an hour after the previous one of its asset."""
        n = self.clock[asset] = self.clock.get(asset, 0) + 1
        return LevelEvent.new(
            service=service, asset_id=asset, level=level,
            observed_at=T0 + timedelta(hours=n), value=60.0 + n, unit="mg/m3", threshold=75.0,
            model_version="test", message=f"{asset} event {n} {level}",
        )  # fmt: skip

    def publish(self, *events: LevelEvent) -> None:
        client = self.redis.client()
        pipe = client.pipeline(transaction=False)
        for e in events:
            pipe.xadd("vigie:levels", {"event": e.to_json()})
        pipe.execute()

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        with self.client() as c:
            r = c.get("/v1/alerts", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def alert(self, alert_id: int) -> dict[str, Any]:
        with self.client() as c:
            return dict(c.get(f"/v1/alerts/{alert_id}").json())

    def wait_alert(self, predicate: Any, what: str, timeout: float = 20) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for a in self.alerts(limit=500):
                full = self.alert(a["id"])
                if predicate(full):
                    return full
            return None

        return wait_until(found, timeout=timeout, interval=0.2, what=what)  # type: ignore[no-any-return]


@pytest.fixture
def alerting(tmp_path: Path, database_url: str) -> Iterator[Alerting]:
    """A running alerting service (not started: call ``.start()``) and its peers."""
    init_keys(tmp_path / "keys")
    redis = RedisServer(tmp_path / "redis").start()
    webhook = HttpReceiver().start()
    smtp_port = free_port()
    env = {
        **os.environ,
        "VIGIE_KEYS_DIR": str(tmp_path / "keys"),
        "VIGIE_VAR_DIR": str(tmp_path / "var"),
        "VIGIE_REDIS_URL": redis.url,
        "VIGIE_DATABASE_URL": database_url,
        "VIGIE_CONSUMER_NAME": "alerting-test",
        "VIGIE_CLAIM_IDLE_MS": "500",
        "VIGIE_RETRY_BASE_S": "0.2",
        "VIGIE_RETRY_MAX_S": "1",
        "VIGIE_DELIVERY_POLL_S": "0.05",
        "VIGIE_REMINDER_CHECK_S": "0.2",
        "VIGIE_SEND_TIMEOUT_S": "2",
        "VIGIE_SMTP_PORT": str(smtp_port),
        "VIGIE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "VIGIE_PUBLIC_URL": "http://alerting.test",
    }
    a = Alerting(tmp_path, env, redis, webhook, smtp_port)
    try:
        yield a
    finally:
        if a.service is not None:
            a.service.stop()
        webhook.stop()
        redis.stop()


@pytest.fixture
def smtp_sink(alerting: Alerting) -> Iterator[SmtpSink]:
    sink = SmtpSink(port=alerting.smtp_port)
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh alerting database (SQLite and PostgreSQL), migrated to head."""
    migrate(database_url)
    engine = make_engine(database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()
