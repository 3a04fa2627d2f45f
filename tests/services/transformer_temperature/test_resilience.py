"""Failure paths against real processes: Redis going away, a tampered model file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.transformer_temperature.conftest import MAX_BATCH, SERVICE, Env
from tests.support.servers import ServiceProcess, wait_until
from tests.support.serving import prepared
from tests.support.synthetic import measurements, transformer_frame
from vigie.models.store import SERVING_ARTIFACT, ModelStore
from vigie_services.transformer_temperature import features as ft

pytestmark = pytest.mark.integration

FRAME = transformer_frame(ft.HISTORY_HOURS + 100, seed=3, start="2018-04-01")


def request(i: int) -> dict:
    return {
        "asset_id": "ETTh1",
        "measurements": measurements(FRAME, slice(i, i + ft.HISTORY_HOURS)),
    }


@pytest.fixture
def fresh(tmp_path: Path, trained_models: Path) -> Iterator[Env]:
    """Keys, settings and a redis-server: each test starts the service itself."""
    with prepared(SERVICE, tmp_path, trained_models, sub="scada", max_batch=MAX_BATCH) as env:
        yield env


def test_redis_outage_loses_no_level_event_and_keeps_their_order(fresh: Env) -> None:
    fresh.service = ServiceProcess(SERVICE, fresh.env, fresh.root / "service.log").start()
    sent: list[str] = []

    def burst(start: int, n: int) -> None:
        with fresh.client() as c:
            for i in range(start, start + n):
                rid = f"req-{i:03d}"
                r = c.post(
                    "/v1/predict", json=request(i), headers=fresh.headers(**{"X-Request-ID": rid})
                )
                assert r.status_code == 200, r.text  # predictions still answer without Redis
                sent.append(rid)

    burst(0, 20)
    fresh.redis.stop()
    burst(20, 25)
    with fresh.client() as c:
        metrics = c.get("/metrics").text
    assert "vigie_level_event_publish_failures_total" in metrics
    fresh.redis.start()  # same port; AOF brought the first 20 back
    burst(45, 15)

    def delivered() -> list[str] | None:
        entries = fresh.redis.client().xrange("vigie:levels")
        ids = [json.loads(f[b"event"])["request_id"] for _id, f in entries]
        return ids if len(ids) >= len(sent) else None

    ids = wait_until(delivered, timeout=20, what="all level events in the stream")
    assert ids == sent  # every event exactly once, in the order the predictions were made
    with fresh.client() as c:
        metrics = c.get("/metrics").text
    assert 'outcome="queued"' in metrics and 'outcome="flushed"' in metrics


def test_tampered_model_is_refused(fresh: Env, trained_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_models, models)
    store = ModelStore(models)
    folder = store.service_dir(SERVICE) / store.current_version(SERVICE)
    # the joblib model, and the serving artifact a worker loads instead when there is one
    for artifact in (folder / "model.joblib", folder / SERVING_ARTIFACT):
        if artifact.exists():
            with artifact.open("ab") as fh:
                fh.write(b"\x00")  # one byte appended: the pickle would still load
    fresh.env["VIGIE_MODELS_DIR"] = str(models)
    fresh.service = ServiceProcess(SERVICE, fresh.env, tmp_path / "service.log").start(
        ready_path="/healthz"
    )
    with fresh.client() as c:
        ready = c.get("/readyz")
        predict = c.post("/v1/predict", json=request(0), headers=fresh.headers())
        card = c.get("/v1/model", headers=fresh.headers())
        metrics = c.get("/metrics").text
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "model_unavailable"
    assert "sha256" in ready.json()["error"]["message"]
    assert predict.status_code == 503 and card.status_code == 503
    assert 'vigie_model_ready{service="transformer-temperature"} 0.0' in metrics
    assert "refusing to load" in fresh.service.log()
    assert not fresh.redis.client().exists("vigie:levels")  # nothing was predicted, nothing sent
