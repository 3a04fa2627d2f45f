"""A prediction service as its tests need it: trained by the real ``vigie train`` on synthetic
data, served by ``vigie serve`` (gunicorn, uvicorn workers) with a real Redis and real keys."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import RedisServer, ServiceProcess
from tests.support.tokens import BAD_TOKEN_KINDS, EXPECTED_MESSAGES, TokenForge
from vigie.auth.keys import init_keys, issue_token, load_signing_key


@dataclass
class Served:
    """Everything a test needs to talk to one running service."""

    name: str
    root: Path
    env: dict[str, str]
    redis: RedisServer
    sub: str = "client"
    service: ServiceProcess | None = None

    def token(self, scopes: str | None = None, sub: str | None = None) -> str:
        scopes = scopes or f"predict:{self.name} feedback:{self.name}"
        key = load_signing_key(self.root / "keys")
        return issue_token(key, sub=sub or self.sub, scopes=scopes.split(), ttl_s=600)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", **extra}

    def client(self) -> httpx.Client:
        assert self.service is not None
        return httpx.Client(base_url=self.service.url, timeout=30)

    def assert_bad_tokens_refused(self, body: Any) -> None:
        """Every forged token (expired, wrong key, alg none, HS256 with the public key, ...) gets
        a 401 in the envelope with its reason. Each carries the right scope, so the refusal can
        only come from its one flaw."""
        forge = TokenForge(self.root / "keys")
        with self.client() as c:
            for kind in BAD_TOKEN_KINDS:
                token = forge.forge(kind, scopes=[f"predict:{self.name}"])
                r = c.post("/v1/predict", json=body, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 401, (kind, r.text)
                err = r.json()["error"]
                assert err["code"] == "unauthorized", kind
                assert EXPECTED_MESSAGES[kind] in err["message"], (kind, err)


def vigie(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``vigie`` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vigie", *args], env=env, capture_output=True, text=True, check=False
    )


# (service, digest of the data it was trained on) -> the models dir holding that training.
_TRAINED: dict[tuple[str, str], Path] = {}


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    return {f: (f.stat().st_mtime_ns, f.stat().st_size) for f in folder.rglob("*") if f.is_file()}


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def train_synthetic(root: Path, service: str, write_data: Callable[[Path], object]) -> Path:
    """``vigie train SERVICE`` on what ``write_data(data_dir)`` writes; returns the models dir.

    Training is the slow part of many test modules, and several train the same service on the
    same synthetic files: within a test session, a second training on identical data copies
    the first one's model (a copy, so a test may tamper with its artifacts) instead."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    before = _files(data)
    write_data(data)
    written = [f for f, stamp in _files(data).items() if before.get(f) != stamp]
    key = (service, _digest(written))
    models = root / "models"
    if key in _TRAINED:
        shutil.copytree(_TRAINED[key] / service, models / service, symlinks=True)
        return models
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_MODELS_DIR": str(models),
        "VIGIE_VAR_DIR": str(root / "var"),
    }
    env.pop("VIGIE_ASSET_CONFIG", None)
    done = vigie(env, "train", service)
    assert done.returncode == 0, done.stderr
    _TRAINED[key] = models
    return models


def make_served(
    service: str,
    root: Path,
    models: Path,
    redis: RedisServer,
    *,
    sub: str = "client",
    max_batch: int | None = None,
    asset_config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Served:
    """Keys, settings and directories for a service (not started yet)."""
    keys = root / "keys"
    init_keys(keys)
    extra, env = (
        env or {},
        {
            **os.environ,
            "VIGIE_MODELS_DIR": str(models),
            "VIGIE_VAR_DIR": str(root / "var"),
            "VIGIE_KEYS_DIR": str(keys),
            "VIGIE_REDIS_URL": redis.url,
            "VIGIE_PREDICTION_LOG_FLUSH_S": "0.1",
            "VIGIE_OUTBOX_FLUSH_INTERVAL_S": "0.1",
        },
    )
    env.pop("VIGIE_ASSET_CONFIG", None)
    if max_batch is not None:
        env["VIGIE_MAX_BATCH"] = str(max_batch)
    if asset_config is not None:
        path = root / "assets.json"
        path.write_text(json.dumps({service: asset_config}))
        env["VIGIE_ASSET_CONFIG"] = str(path)
    env.update(extra)
    return Served(name=service, root=root, env=env, redis=redis, sub=sub)


@contextmanager
def serve(service: str, root: Path, models: Path, **settings: Any) -> Iterator[Served]:
    """A running service (2 gunicorn workers) with its own redis-server, stopped afterwards."""
    redis = RedisServer(root / "redis").start()
    served = make_served(service, root, models, redis, **settings)
    served.service = ServiceProcess(service, served.env, root / "service.log").start()
    try:
        yield served
    finally:
        served.service.stop()
        redis.stop()
