"""What the alerting benches share: a real redis-server, the alerting service under gunicorn
(one worker) and an HTTP receiver its webhook subscribers point at, all stopped afterwards."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.receivers import HttpReceiver
from tests.support.servers import RedisServer, ServiceProcess
from vigie.auth.keys import init_keys, issue_token, load_signing_key


@dataclass
class AlertingBench:
    root: Path
    redis: RedisServer
    receiver: HttpReceiver
    service: ServiceProcess


@contextmanager
def alerting_bench(
    database_url: str | None, subscribers: int = 1, **env: str
) -> Iterator[AlertingBench]:
    """Alerting on a fresh SQLite file (or ``database_url``) with ``subscribers`` webhook
    subscribers (every level) to the receiver's ``/hook``; ``env``: more settings."""
    root = Path(tempfile.mkdtemp(prefix="vigie-bench-"))
    init_keys(root / "keys")
    redis = RedisServer(root / "redis").start()
    receiver = HttpReceiver().start()
    settings = {
        **os.environ,
        "VIGIE_KEYS_DIR": str(root / "keys"),
        "VIGIE_VAR_DIR": str(root / "var"),
        "VIGIE_REDIS_URL": redis.url,
        "VIGIE_LOG_LEVEL": "WARNING",
        **env,
    }
    if database_url:
        settings["VIGIE_DATABASE_URL"] = database_url
    service = ServiceProcess("alerting", settings, root / "alerting.log", workers=1).start()
    try:
        token = issue_token(
            load_signing_key(root / "keys"), sub="bench", scopes=["subscribers:admin"], ttl_s=600
        )
        for n in range(subscribers):
            httpx.post(
                service.url + "/v1/subscribers",
                headers={"Authorization": f"Bearer {token}"},
                json={"name": f"bench-{n}", "channel": "webhook", "target": receiver.url + "/hook",
                      "min_level": "NORMAL", "language": "en"},
            ).raise_for_status()  # fmt: skip
        yield AlertingBench(root, redis, receiver, service)
    finally:
        service.stop()
        receiver.stop()
        redis.stop()
