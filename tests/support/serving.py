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
import joblib
import pytest

from tests.support.http_checks import samples
from tests.support.servers import RedisServer, ServiceProcess, wait_until
from tests.support.tokens import BAD_TOKEN_KINDS, EXPECTED_MESSAGES, TokenForge
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.models.store import ModelStore

LEVELS_STREAM = "vigie:levels"


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

    def post_raw(self, content: bytes | str) -> httpx.Response:
        """``POST /v1/predict`` of a raw JSON body, with a token of the right scope."""
        with self.client() as c:
            headers = self.headers(**{"Content-Type": "application/json"})
            return c.post("/v1/predict", content=content, headers=headers)

    def card(self) -> dict[str, Any]:
        """``GET /v1/model``: the card of the model being served."""
        with self.client() as c:
            r = c.get("/v1/model", headers=self.headers())
        assert r.status_code == 200, r.text
        card: dict[str, Any] = r.json()
        return card

    def joblib_model(self) -> Any:
        """The current model of the models dir as ``model.joblib`` holds it: the reference the
        served answers are compared with."""
        store = ModelStore(Path(self.env["VIGIE_MODELS_DIR"]))
        folder = store.service_dir(self.name) / store.current_version(self.name)
        return joblib.load(folder / "model.joblib")

    def level_events(self) -> list[dict[str, Any]]:
        """Every level event in the Redis stream ``vigie:levels``, oldest first."""
        entries = self.redis.client().xrange(LEVELS_STREAM)
        return [json.loads(fields[b"event"]) for _id, fields in entries]

    def level_event(self, request_id: str) -> dict[str, Any]:
        """The one level event of the request ``request_id`` (waits for its publication)."""
        found = wait_until(
            lambda: [e for e in self.level_events() if e.get("request_id") == request_id],
            what=f"the level event of {request_id}",
        )
        assert len(found) == 1, found
        event: dict[str, Any] = found[0]
        return event

    def assert_no_server_error(self) -> None:
        """No request so far was answered with a 5xx (``/metrics`` counts them by status)."""
        with self.client() as c:
            text = c.get("/metrics").text
        errors = [s for s in samples(text) if s.labels.get("status", "").startswith("5")]
        assert [(s.name, s.labels) for s in errors if s.value > 0] == [], text


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
def prepared(service: str, root: Path, models: Path, **settings: Any) -> Iterator[Served]:
    """A service's keys, settings (see :func:`make_served`) and running redis-server, for a test
    that starts the service itself (``served.service = ServiceProcess(...)``); whatever runs is
    stopped afterwards."""
    redis = RedisServer(root / "redis").start()
    served = make_served(service, root, models, redis, **settings)
    try:
        yield served
    finally:
        if served.service is not None:
            served.service.stop()
        redis.stop()


@contextmanager
def serve(
    service: str,
    root: Path,
    models: Path,
    app_spec: str | None = None,
    expect: int = 200,
    **settings: Any,
) -> Iterator[Served]:
    """A running service (2 gunicorn workers) with its own redis-server, stopped afterwards;
    ``app_spec`` serves that app factory instead of the registry's (see ServiceProcess);
    started once ``/readyz`` answers ``expect``."""
    with prepared(service, root, models, **settings) as served:
        served.service = ServiceProcess(
            service, served.env, root / "service.log", app_spec=app_spec
        )
        served.service.start(expect=expect)
        yield served


Writer = Callable[[Path], object]


def trained_models_fixture(service: str, write_data: Writer) -> Any:
    """A conftest's session fixture ``trained_models``: the models dir of ``service`` trained by
    ``vigie train`` on what ``write_data(data_dir)`` writes (see :func:`train_synthetic`).

    ``trained_models = trained_models_fixture(SERVICE, write_my_data)`` in a conftest."""

    @pytest.fixture(scope="session", name="trained_models")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return train_synthetic(tmp_path_factory.mktemp(f"{service}-trained"), service, write_data)

    return fixture


def served_fixture(service: str, **settings: Any) -> Any:
    """A conftest's module fixture ``served``: ``service`` running on ``trained_models`` (see
    :func:`serve`, which takes ``settings``), shared by a test module."""

    @pytest.fixture(scope="module", name="served")
    def fixture(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Served]:
        root = tmp_path_factory.mktemp(f"{service}-served")
        with serve(service, root, trained_models, **settings) as running:
            yield running

    return fixture
