"""The Predictor pipeline (validate -> call -> summarize -> respond, level event, log records)
with the toy service, a real redis-server and a SQLite prediction log, in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.servers import RedisServer, wait_until
from tests.support.toy_service import TankLevelService, write_training_data
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.contract.batch import Batch
from vigie.contract.levels import Level
from vigie.models.store import ModelStore
from vigie.models.training import run_training
from vigie.serve.app import create_app
from vigie.serve.predictor import Predictor
from vigie.settings import VigieSettings

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def rows(levels: list[float], inflow: float = 10.0) -> list[dict[str, Any]]:
    return [
        {"timestamp": (T0 + timedelta(hours=i)).isoformat(), "level_m": lvl, "inflow_m3_h": inflow}
        for i, lvl in enumerate(levels)
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_training_data(root / "data")
    settings = VigieSettings(models_dir=root / "models", var_dir=root / "var")
    service = TankLevelService(settings)
    trained = run_training(service, root / "data", lambda _m: None)
    ModelStore(settings.models_dir).publish(service.name, trained.model, trained.card)
    return root / "models"


@pytest.fixture
def app_client(
    trained: Path, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[TestClient, VigieSettings]]:
    keys = tmp_path / "keys"
    init_keys(keys)
    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps({"tank-level": {"T2": {"alerte_m": 5, "critique_m": 9}}}))
    settings = VigieSettings(
        models_dir=trained,
        var_dir=tmp_path / "var",
        keys_dir=keys,
        redis_url=redis_server.url,
        prediction_log_flush_s=0.05,
        asset_config=assets,
    )
    app = create_app(TankLevelService(settings), settings)
    with TestClient(app) as client:
        token = issue_token(
            load_signing_key(keys), sub="t", scopes=["predict:tank-level"], ttl_s=600
        )
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, settings


def test_answers_one_prediction_per_row_with_levels_from_the_asset_settings(
    app_client: tuple[TestClient, VigieSettings],
) -> None:
    client, _ = app_client
    normal = client.post("/v1/predict", json={"asset_id": "T1", "measurements": rows([8, 8])})
    assert normal.status_code == 200, normal.text
    body = normal.json()
    assert [p["level"] for p in body["predictions"]] == ["NORMAL", "NORMAL"]
    assert body["predictions"][0]["timestamp"] == "2024-05-01T00:00:00Z"
    assert set(body["predictions"][0]) == {"timestamp", "level", "level_next_m"}
    # T2's configured thresholds (5 / 9 m) make the same level ALERTE
    configured = client.post("/v1/predict", json={"asset_id": "T2", "measurements": rows([8])})
    assert configured.json()["level"] == "ALERTE"


def test_level_event_describes_the_worst_latest_prediction(
    app_client: tuple[TestClient, VigieSettings], redis_server: RedisServer
) -> None:
    client, _ = app_client
    r = client.post("/v1/predict", json={"asset_id": "T2", "measurements": rows([1, 19, 19, 2])})
    assert r.status_code == 200
    body = r.json()
    assert body["level"] == "CRITIQUE"
    entries = redis_server.client().xrange("vigie:levels")
    event = json.loads(entries[-1][1][b"event"])
    assert event["level"] == "CRITIQUE" and event["asset_id"] == "T2"
    assert event["observed_at"] == "2024-05-01T02:00:00Z"  # the later of the two CRITIQUE rows
    assert event["threshold"] == 9 and event["unit"] == "m"
    assert event["request_id"] == body["request_id"]


def test_predictions_are_logged_with_their_measurements_and_points(
    app_client: tuple[TestClient, VigieSettings],
) -> None:
    client, _ = app_client
    sent = rows([3, 4, 5])
    assert (
        client.post("/v1/predict", json={"asset_id": "T9", "measurements": sent}).status_code == 200
    )

    def page() -> list[dict[str, Any]]:
        r = client.get("/v1/predictions", params={"asset_id": "T9"})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items if len(items) == 3 else []

    items = wait_until(page, timeout=30, what="3 logged predictions")
    assert [i["measurement"]["level_m"] for i in items] == [3, 4, 5]
    assert items[0]["measurement"]["timestamp"] == "2024-05-01T00:00:00Z"
    assert items[0]["prediction"]["level"] in {"NORMAL", "ALERTE", "CRITIQUE"}


def test_bad_rows_are_422_naming_the_field_and_nothing_is_published(
    app_client: tuple[TestClient, VigieSettings], redis_server: RedisServer
) -> None:
    client, _ = app_client
    before = redis_server.client().xlen("vigie:levels")
    bad = rows([3, 4])
    bad[1]["level_m"] = 25
    r = client.post("/v1/predict", json={"asset_id": "T1", "measurements": bad})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.measurements.1.level_m"
    nan = '{"asset_id": "T1", "measurements": [{"timestamp": "2024-05-01T00:00:00Z", ' \
          '"level_m": NaN, "inflow_m3_h": 1}]}'  # fmt: skip
    assert client.post("/v1/predict", content=nan).status_code in (400, 422)
    assert redis_server.client().xlen("vigie:levels") == before


def test_pipeline_steps_are_usable_alone(app_client: tuple[TestClient, VigieSettings]) -> None:
    client, _ = app_client
    predictor: Predictor = client.app.state.predictor  # type: ignore[attr-defined]
    body = predictor.validate(json.dumps({"asset_id": "T2", "measurements": rows([1, 8])}).encode())
    batch: Batch[Any] = Batch(body.asset_id, body.measurements)
    service = predictor.service
    scores = service.present(batch, service.infer(batch))
    times = predictor.times(batch, scores)
    assert list(times) == [T0, T0 + timedelta(hours=1)]
    event = predictor.level_event(batch, scores, times, "v1", "req-1")
    assert event.level is Level.highest(scores.levels)
    items = [
        {"timestamp": t, "level": lvl, **i}
        for t, lvl, i in zip(times, scores.levels, scores.items, strict=True)
    ]
    records = predictor.log_records(batch, scores, items, "v1", "req-1")
    assert [len(r.points) for r in records] == [1, 1]
    assert records[1].points[0].target_time == T0 + timedelta(hours=1)
    assert records[0].measurement == {"timestamp": "2024-05-01T00:00:00Z", "level_m": 1.0,
                                      "inflow_m3_h": 10.0}  # fmt: skip


def test_bad_asset_settings_stop_the_service_naming_asset_and_field(tmp_path: Path) -> None:
    from vigie.contract.errors import ConfigError

    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps({"tank-level": {"T7": {"alerte_m": -1}}}))
    with pytest.raises(ConfigError, match=r"tank-level\.T7\.alerte_m"):
        TankLevelService(VigieSettings(asset_config=assets, var_dir=tmp_path))
    assets.write_text(json.dumps({"tank-level": {"T7": {"unknown": 1}}}))
    with pytest.raises(ConfigError, match=r"tank-level\.T7\.unknown"):
        TankLevelService(VigieSettings(asset_config=assets, var_dir=tmp_path))


@pytest.mark.anyio
async def test_requests_before_the_runtime_is_built_are_503(trained: Path, tmp_path: Path) -> None:
    import httpx

    keys = tmp_path / "keys"
    init_keys(keys)
    settings = VigieSettings(models_dir=trained, var_dir=tmp_path / "var", keys_dir=keys)
    app = create_app(TankLevelService(settings), settings)  # lifespan not run
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://toy.test") as client:
        body = {"asset_id": "T1", "measurements": rows([1])}
        for r in (await client.post("/v1/predict", json=body), await client.get("/readyz")):
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "service_unavailable"
