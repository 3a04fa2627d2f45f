"""Micro-batching through a real service (gunicorn, Redis): concurrent requests scored together
answer exactly what they answer one by one, and a bad one fails alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.serving import Served, serve, train_synthetic
from tests.support.synthetic import measurements, transformer_frame, write_transformer_data

SERVICE = "transformer-temperature"
HISTORY = 72


def bodies(count: int) -> list[dict[str, Any]]:
    frame = transformer_frame(HISTORY + count + 5, seed=7, start="2018-05-01")
    return [
        {
            "asset_id": ("ETTh1", "ETTh2")[i % 2],
            "measurements": measurements(frame, slice(i, i + HISTORY + 1)),
        }
        for i in range(count)
    ]


async def post_all(served: Served, payloads: list[dict[str, Any]]) -> list[httpx.Response]:
    base = f"http://127.0.0.1:{served.service.port}"  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=base, headers=served.headers(), timeout=30) as c:
        return await asyncio.gather(*(c.post("/v1/predict", json=p) for p in payloads))


def comparable(r: httpx.Response) -> Any:
    body = r.json()
    return body["level"], body["predictions"]


@pytest.mark.integration
def test_concurrent_requests_scored_together_answer_as_one_by_one(tmp_path: Path) -> None:
    models = train_synthetic(
        tmp_path / "trained", SERVICE, lambda d: write_transformer_data(d, hours=900)
    )
    payloads = bodies(12)
    bad = {"asset_id": "ETTh1", "measurements": payloads[0]["measurements"][:10]}
    with serve(SERVICE, tmp_path / "plain", models) as plain:
        alone = [asyncio.run(post_all(plain, [p]))[0] for p in payloads]
    env = {
        "VIGIE_MICRO_BATCH_WINDOW_US": "20000",
        "VIGIE_MICRO_BATCH_MAX_ROWS": "5000",  # a transformer forecast takes 73 measurements
        "VIGIE_WORKERS": "1",
    }
    with serve(SERVICE, tmp_path / "batched", models, env=env) as batched:
        together = asyncio.run(post_all(batched, [*payloads[:6], bad, *payloads[6:]]))
        with batched.client() as c:
            exposition = c.get("/metrics").text
    assert all(r.status_code == 200 for r in alone), [r.text for r in alone]
    refused = together.pop(6)
    assert refused.status_code == 422 and "measurements" in refused.text
    assert [r.status_code for r in together] == [200] * 12
    assert [comparable(r) for r in together] == [comparable(r) for r in alone]
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    samples = {s.name: s.value for s in families["vigie_micro_batch_calls"].samples}
    assert samples["vigie_micro_batch_calls_sum"] == 13  # every call went through a batch
    assert samples["vigie_micro_batch_calls_count"] < 13  # and some shared one
