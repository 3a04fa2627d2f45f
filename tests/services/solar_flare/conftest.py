"""A solar-flare service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``daily_train.csv`` (see
:mod:`.synthetic`), so these tests need neither the real data set nor a model prepared
beforehand. The simulation is deterministic: tests rebuild it with :func:`simulation` to get the
raw material behind every row of the training file.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services.solar_flare.synthetic import Simulation, simulate, write_solar_data
from tests.support.servers import RedisServer, ServiceProcess
from vigie.auth.keys import init_keys, issue_token, load_signing_key

SERVICE = "solar-flare"
MAX_BATCH = 200
DAYS = 700
SEED = 3


@functools.cache
def simulation() -> Simulation:
    return simulate(DAYS, seed=SEED)


@dataclass
class Env:
    """Everything a test needs to talk to one running service."""

    root: Path
    env: dict[str, str]
    redis: RedisServer
    service: ServiceProcess | None = None

    def token(
        self, scopes: str = f"predict:{SERVICE} feedback:{SERVICE}", sub: str = "desk"
    ) -> str:
        key = load_signing_key(self.root / "keys")
        return issue_token(key, sub=sub, scopes=scopes.split(), ttl_s=600)

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
    """A models dir holding a solar-flare model trained on synthetic data."""
    root = tmp_path_factory.mktemp("solar-trained")
    data = write_solar_data(root / "data", simulation())
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_MODELS_DIR": str(root / "models"),
        "VIGIE_VAR_DIR": str(root / "var"),
    }
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 0, done.stderr
    return root / "models"


def make_env(root: Path, models: Path, redis: RedisServer) -> Env:
    keys = root / "keys"
    init_keys(keys)
    env = {
        **os.environ,
        "VIGIE_MODELS_DIR": str(models),
        "VIGIE_VAR_DIR": str(root / "var"),
        "VIGIE_KEYS_DIR": str(keys),
        "VIGIE_REDIS_URL": redis.url,
        "VIGIE_MAX_BATCH": str(MAX_BATCH),
        "VIGIE_PREDICTION_LOG_FLUSH_S": "0.1",
        "VIGIE_OUTBOX_FLUSH_INTERVAL_S": "0.1",
    }
    env.pop("VIGIE_ASSET_CONFIG", None)
    return Env(root=root, env=env, redis=redis)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("solar-served")
    redis = RedisServer(root / "redis").start()
    env = make_env(root, trained_models, redis)
    env.service = ServiceProcess(SERVICE, env.env, root / "service.log").start()
    try:
        yield env
    finally:
        env.service.stop()
        redis.stop()
