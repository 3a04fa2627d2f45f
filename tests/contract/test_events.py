"""Every service: one level event per call, idempotent retries, metrics, the prediction log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.contract.conftest import Contract
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration

LEVELS = ["NORMAL", "ALERTE", "CRITIQUE"]


def events(c: Contract, request_id: str) -> list[dict[str, Any]]:
    entries = c.served.redis.client().xrange("vigie:levels")
    found = [json.loads(fields[b"event"]) for _id, fields in entries]
    return [e for e in found if e.get("request_id") == request_id]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_one_level_event_per_call_with_the_response_level(contract: Contract) -> None:
    rid = f"ev-{uuid.uuid4().hex}"
    with contract.served.client() as client:
        r = client.post(
            "/v1/predict", json=contract.body(rows=3),
            headers=contract.served.headers(**{"X-Request-ID": rid}),
        )  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert r.headers["x-request-id"] == rid == out["request_id"]
    assert out["service"] == contract.name and out["predictions"]
    item_levels = [p["level"] for p in out["predictions"]]
    assert out["level"] == max(item_levels, key=LEVELS.index)
    (event,) = wait_until(lambda: events(contract, rid), timeout=30, what="the level event")
    assert event["service"] == contract.name and event["asset_id"] == out["asset_id"]
    assert event["level"] == out["level"] and event["model_version"] == out["model_version"]
    assert event["message"]
    uuid.UUID(event["event_id"])


def test_an_idempotent_retry_answers_the_same_and_publishes_once(contract: Contract) -> None:
    key, rid = uuid.uuid4().hex, f"idem-{uuid.uuid4().hex}"
    first_body, other_body = contract.bodies(2)
    headers = contract.served.headers(**{"Idempotency-Key": key, "X-Request-ID": rid})
    with contract.served.client() as client:
        first = client.post("/v1/predict", json=first_body, headers=headers)
        retries = [client.post("/v1/predict", json=first_body, headers=headers) for _ in range(3)]
        other = client.post("/v1/predict", json=other_body, headers=headers)
        text = client.get("/metrics").text
    assert first.status_code == 200, first.text
    for retry in retries:
        assert retry.status_code == 200 and retry.content == first.content
        assert retry.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    # A replay that published would have done so before answering: the stream has them all.
    published = wait_until(lambda: events(contract, rid), timeout=30, what="the level event")
    assert len(published) == 1
    assert metric(text, "vigie_idempotent_replays_total", service=contract.name) >= 3


def test_metrics_count_predictions_by_level_and_requests_by_route(contract: Contract) -> None:
    with contract.served.client() as client:
        before = client.get("/metrics").text
        out = client.post(
            "/v1/predict", json=contract.body(rows=2), headers=contract.served.headers()
        ).json()
        after = client.get("/metrics").text
    for level in LEVELS:
        count = sum(p["level"] == level for p in out["predictions"])
        grew = metric(after, "vigie_predictions_total", service=contract.name, level=level)
        was = metric(before, "vigie_predictions_total", service=contract.name, level=level)
        assert grew - was == count, level
    assert metric(after, "vigie_http_requests_total", route="/v1/predict", status="200") >= 1
    assert metric(after, "vigie_model_ready", service=contract.name) >= 1


def test_predictions_are_stored_with_their_measurements_and_paged(contract: Contract) -> None:
    body = contract.body(rows=3)
    rid = f"log-{uuid.uuid4().hex}"
    headers = contract.served.headers()
    with contract.served.client() as client:
        r = client.post("/v1/predict", json=body, headers={**headers, "X-Request-ID": rid})
        assert r.status_code == 200, r.text
        answered = r.json()["predictions"]

        def stored() -> list[dict[str, Any]]:
            """Every stored prediction of the asset, page by page (5 a page), of this call."""
            mine: list[dict[str, Any]] = []
            cursor: int | None = 0
            while cursor is not None:
                params = {"asset_id": body["asset_id"], "limit": 5, "cursor": cursor}
                got = client.get("/v1/predictions", params=params, headers=headers)
                assert got.status_code == 200, got.text
                page = got.json()
                mine += [i for i in page["items"] if i["request_id"] == rid]
                assert len(page["items"]) <= 5
                cursor = page["next_cursor"]
            return mine if len(mine) == len(answered) else []

        rows = wait_until(stored, timeout=30, what="the logged predictions")
    assert [s["prediction"] for s in rows] == answered
    assert all(s["measurement"]["timestamp"] for s in rows)
    assert [s["timestamp"] for s in rows] == [a["timestamp"] for a in answered]
