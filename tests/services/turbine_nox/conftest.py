"""A turbine-nox service under gunicorn (2 workers) with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``turbine_nox/train.csv``
(4 "years", the last one drifted), so these tests need neither the real data nor a prepared model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.servers import RedisServer, ServiceProcess
from vigie.auth.keys import init_keys, issue_token, load_signing_key

SERVICE = "turbine-nox"
CONFIGURED = "GT-LOW"  # an asset with its own, low limits
CONFIGURED_LIMITS = {"nox_limit_mg_m3": 40.0, "co_limit_mg_m3": 80.0, "alerte_fraction": 0.8}


@dataclass
class Env:
    root: Path
    env: dict[str, str]
    redis: RedisServer
    service: ServiceProcess | None = None

    def token(self, scopes: str = f"predict:{SERVICE} feedback:{SERVICE}") -> str:
        return issue_token(
            load_signing_key(self.root / "keys"), sub="plant", scopes=scopes.split(), ttl_s=600
        )

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", **extra}

    def client(self) -> httpx.Client:
        assert self.service is not None
        return httpx.Client(base_url=self.service.url, timeout=30)


def vigie(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigie", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nox-trained")
    data = write_turbine_data(root / "data", rows_per_year=500)
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_MODELS_DIR": str(root / "models"),
        "VIGIE_VAR_DIR": str(root / "var"),
    }
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 0, done.stderr
    return root / "models"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("nox-served")
    redis = RedisServer(root / "redis").start()
    keys = root / "keys"
    init_keys(keys)
    assets = root / "assets.json"
    assets.write_text(json.dumps({SERVICE: {CONFIGURED: CONFIGURED_LIMITS}}))
    env = Env(
        root=root,
        redis=redis,
        env={
            **os.environ,
            "VIGIE_MODELS_DIR": str(trained_models),
            "VIGIE_VAR_DIR": str(root / "var"),
            "VIGIE_KEYS_DIR": str(keys),
            "VIGIE_REDIS_URL": redis.url,
            "VIGIE_ASSET_CONFIG": str(assets),
            "VIGIE_PREDICTION_LOG_FLUSH_S": "0.1",
            "VIGIE_OUTBOX_FLUSH_INTERVAL_S": "0.1",
        },
    )
    env.service = ServiceProcess(SERVICE, env.env, root / "service.log").start()
    try:
        yield env
    finally:
        env.service.stop()
        redis.stop()
