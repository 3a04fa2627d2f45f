"""An energy-anomaly service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic CSV in the format of
``gas_regional_daily_train.csv`` (3 series, 2 years), so no real data or prepared model is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import pytest

from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.support.servers import RedisServer, ServiceProcess
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.modelstore import ModelStore

SERVICE = "energy-anomaly"
MAX_BATCH = 400


@dataclass
class Env:
    """Everything a test needs to talk to one running service."""

    root: Path
    env: dict[str, str]
    redis: RedisServer
    service: ServiceProcess | None = None

    def token(self, scopes: str = f"predict:{SERVICE} feedback:{SERVICE}") -> str:
        key = load_signing_key(self.root / "keys")
        return issue_token(key, sub="analyst", scopes=scopes.split(), ttl_s=600)

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
    """A models dir holding an energy-anomaly model trained on synthetic data."""
    root = tmp_path_factory.mktemp("energy-trained")
    data = write_gas_data(root / "data")
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_MODELS_DIR": str(root / "models"),
        "VIGIE_VAR_DIR": str(root / "var"),
    }
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 0, done.stderr
    return root / "models"


@pytest.fixture(scope="session")
def energy_model(trained_models: Path):  # type: ignore[no-untyped-def]
    """The trained model object, loaded as the service loads it."""
    store = ModelStore(trained_models)
    version = store.current_version(SERVICE)
    return joblib.load(store.service_dir(SERVICE) / version / "model.joblib")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("energy-served")
    redis = RedisServer(root / "redis").start()
    keys = root / "keys"
    init_keys(keys)
    env = {
        **os.environ,
        "VIGIE_MODELS_DIR": str(trained_models),
        "VIGIE_VAR_DIR": str(root / "var"),
        "VIGIE_KEYS_DIR": str(keys),
        "VIGIE_REDIS_URL": redis.url,
        "VIGIE_MAX_BATCH": str(MAX_BATCH),
        "VIGIE_PREDICTION_LOG_FLUSH_S": "0.1",
        "VIGIE_OUTBOX_FLUSH_INTERVAL_S": "0.1",
    }
    served = Env(root=root, env=env, redis=redis)
    served.service = ServiceProcess(SERVICE, env, root / "service.log").start()
    try:
        yield served
    finally:
        served.service.stop()
        redis.stop()
