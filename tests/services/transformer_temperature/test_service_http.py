"""transformer-temperature end to end: gunicorn (2 uvicorn workers), a real Redis, real tokens."""

from __future__ import annotations

import uuid

import numpy as np
import orjson
import pytest

from tests.services.transformer_temperature.conftest import SERVICE, Env
from tests.support.http_checks import BadInput, bad_inputs, mutated, sample, with_literal
from tests.support.synthetic import ETT_COLUMNS, measurements, transformer_frame
from vigie_services.transformer_temperature import features as ft
from vigie_services.transformer_temperature import forecasting as fc

pytestmark = pytest.mark.integration

HISTORY = ft.HISTORY_HOURS
FRAME = transformer_frame(HISTORY + 200, seed=7, start="2018-03-01")


def body(n: int = HISTORY, start: int = 0, asset: str = "ETTh1") -> dict:
    return {"asset_id": asset, "measurements": measurements(FRAME, slice(start, start + n))}


# -- predictions --------------------------------------------------------------------------------
def test_single_forecast_matches_the_model_called_directly(served: Env) -> None:
    with served.client() as c:
        r = c.post("/v1/predict", json=body(), headers=served.headers())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["service"] == SERVICE and out["asset_id"] == "ETTh1"
    assert len(out["predictions"]) == 1
    pred = out["predictions"][0]
    assert pred["timestamp"] == body()["measurements"][-1]["timestamp"].replace("+00:00", "Z")
    assert [f["horizon"] for f in pred["forecasts"]] == ["h1", "h6", "h24"]

    values = FRAME[ETT_COLUMNS].to_numpy()[:HISTORY]
    expected = fc.forecast(served.joblib_model(), values)[0]
    got = [f["oil_temperature_c"] for f in pred["forecasts"]]
    assert np.allclose(got, expected, atol=1e-3)
    assert out["model_version"] == served.card()["version"]


def test_batch_gives_one_forecast_per_origin_in_order(served: Env) -> None:
    extra = 25
    with served.client() as c:
        r = c.post(
            "/v1/predict", json=body(HISTORY + extra - 1, start=10), headers=served.headers()
        )
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == extra
    values = FRAME[ETT_COLUMNS].to_numpy()[10 : 10 + HISTORY + extra - 1]
    expected = fc.forecast(served.joblib_model(), values)
    got = np.array([[f["oil_temperature_c"] for f in p["forecasts"]] for p in preds])
    assert np.allclose(got, expected, atol=1e-3)
    stamps = [p["timestamp"] for p in preds]
    assert stamps == sorted(stamps)


def test_level_rule_uses_the_asset_thresholds_of_the_card(served: Env) -> None:
    card = served.card()
    thresholds = card["thresholds"]["per_asset"]["ETTh1"]
    assert thresholds["critique_c"] > thresholds["alerte_c"]
    with served.client() as c:
        preds = c.post("/v1/predict", json=body(HISTORY + 50), headers=served.headers()).json()
    for p in preds["predictions"]:
        for f in p["forecasts"]:
            v = f["oil_temperature_c"]
            want = (
                "CRITIQUE" if v >= thresholds["critique_c"]
                else "ALERTE" if v >= thresholds["alerte_c"] else "NORMAL"
            )  # fmt: skip
            assert f["level"] == want
        assert p["recommendation"]
    levels = {p["level"] for p in preds["predictions"]}
    rank = ["NORMAL", "ALERTE", "CRITIQUE"]
    assert preds["level"] == max(levels, key=rank.index)


def test_model_card_holds_metrics_and_persistence(served: Env) -> None:
    card = served.card()
    for asset in ("ETTh1", "ETTh2"):
        for h in ("h1", "h6", "h24"):
            m = card["metrics"][asset][h]
            assert {"mae", "rmse", "r2", "persistence_mae"} <= set(m)
    assert len(card["artifact"]["sha256"]) == 64
    assert card["history_hours"] == HISTORY


# -- auth ---------------------------------------------------------------------------------------


# -- bad input ----------------------------------------------------------------------------------
def _mutate(fn) -> bytes:  # type: ignore[no-untyped-def]
    return mutated(body(), fn)


def _literal(i: int, name: str, literal: str) -> str:
    """A body whose measurement ``i`` has ``name`` set to a raw JSON token such as NaN."""
    return with_literal(body(), ("measurements", i, name), literal)


BAD_INPUTS = {
    "nan": (lambda: _literal(3, "OT", "NaN"), 422, "body.measurements.3.OT"),
    "infinity": (lambda: _literal(5, "HUFL", "Infinity"), 422, "body.measurements.5.HUFL"),
    "-infinity": (lambda: _literal(0, "LULL", "-Infinity"), 422, "body.measurements.0.LULL"),
    "missing field": (lambda: _mutate(lambda b: b["measurements"][2].pop("OT")), 422,
                      "body.measurements.2.OT"),
    "wrong type": (lambda: _mutate(lambda b: b["measurements"][1].update(MUFL="hot")), 422,
                   "body.measurements.1.MUFL"),
    "unknown field": (lambda: _mutate(lambda b: b["measurements"][0].update(colour="red")), 422,
                      "body.measurements.0.colour"),
    "unknown top-level field": (lambda: _mutate(lambda b: b.update(extra=1)), 422, "body.extra"),
    "empty batch": (lambda: _mutate(lambda b: b.update(measurements=[])), 422, "body.measurements"),
    "out of range": (lambda: _mutate(lambda b: b["measurements"][4].update(OT=900.0)), 422,
                     "body.measurements.4.OT"),
    "naive timestamp": (lambda: _mutate(lambda b: b["measurements"][0].update(
        timestamp="2018-03-01T00:00:00")), 422, "body.measurements.0.timestamp"),
    "too little history": (lambda: orjson.dumps(body(HISTORY - 1)), 422, "body.measurements"),
    "gap in the hours": (lambda: _mutate(lambda b: b["measurements"].pop(6)), 422,
                         "body.measurements.6.timestamp"),
    "unknown asset": (lambda: orjson.dumps(body(asset="NOPE-9")), 422, "body.asset_id"),
    "invalid asset id": (lambda: orjson.dumps(body(asset="../etc")), 422, "body.asset_id"),
    "malformed json": (lambda: b'{"asset_id": "ETTh1", "measurements": [', 400, None),
    "not an object": (lambda: b"[1, 2, 3]", 422, "body"),
}  # fmt: skip


@bad_inputs(BAD_INPUTS)
def test_bad_input_is_a_4xx_naming_the_field(served: Env, bad: BadInput) -> None:
    bad.assert_refused_by(served)


def test_no_5xx_in_the_metrics_after_bad_inputs(served: Env) -> None:
    served.assert_no_server_error()


# -- idempotency, events, metrics ---------------------------------------------------------------


def test_level_event_published_per_call_with_the_response_level(served: Env) -> None:
    rid = f"ev-{uuid.uuid4().hex}"
    with served.client() as c:
        out = c.post(
            "/v1/predict", json=body(HISTORY + 5), headers=served.headers(**{"X-Request-ID": rid})
        ).json()
    ev = served.level_event(rid)
    assert ev["service"] == SERVICE and ev["asset_id"] == "ETTh1"
    assert ev["level"] == out["level"]
    assert ev["unit"] == "°C" and ev["model_version"] == out["model_version"]
    assert ev["threshold"] is not None and ev["message"]
    uuid.UUID(ev["event_id"])


def test_metrics_count_what_happened(served: Env) -> None:
    with served.client() as c:
        before = c.get("/metrics").text
        n = 5
        for i in range(n):
            assert (
                c.post("/v1/predict", json=body(start=i), headers=served.headers()).status_code
                == 200
            )
        c.post("/v1/predict", json=body(asset="NOPE"), headers=served.headers())
        after = c.get("/metrics").text
    route = {"service": SERVICE, "route": "/v1/predict", "method": "POST"}
    assert (
        sample(after, "vigie_http_requests_total", status="200", **route)
        - sample(before, "vigie_http_requests_total", status="200", **route)
        == n
    )
    assert sample(after, "vigie_http_requests_total", status="422", **route) >= 1
    total = sum(
        sample(after, "vigie_predictions_total", service=SERVICE, level=lvl)
        - sample(before, "vigie_predictions_total", service=SERVICE, level=lvl)
        for lvl in ("NORMAL", "ALERTE", "CRITIQUE")
    )
    assert total == n
    card = served.card()
    assert (
        sample(after, "vigie_model_info", service=SERVICE, sha256=card["artifact"]["sha256"]) == 1
    )
    assert sample(after, "vigie_http_request_duration_seconds_count", **route) > 0


# -- prediction log and feedback ---------------------------------------------------------------
def test_predictions_are_stored_and_paged(served: Env) -> None:
    asset = "ETTh2"
    rid = f"log-{uuid.uuid4().hex}"
    with served.client() as c:
        r = c.post(
            "/v1/predict",
            json=body(HISTORY + 9, asset=asset),
            headers=served.headers(**{"X-Request-ID": rid}),
        )
        assert r.status_code == 200
        pages, cursor = [], 0
        while True:
            page = c.get(
                "/v1/predictions",
                params={"asset_id": asset, "limit": 4, "cursor": cursor},
                headers=served.headers(),
            ).json()
            pages.append(page["items"])
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        window = c.get(
            "/v1/predictions",
            params={"asset_id": asset, "start": r.json()["predictions"][2]["timestamp"],
                    "end": r.json()["predictions"][5]["timestamp"]},
            headers=served.headers(),
        ).json()["items"]  # fmt: skip
    items = [i for p in pages for i in p if i["request_id"] == rid]
    assert len(items) == 10
    assert [len(p) for p in pages[:-1]] == [4] * (len(pages) - 1)
    first = items[0]
    assert first["model_version"] and first["level"] in {"NORMAL", "ALERTE", "CRITIQUE"}
    assert set(first["measurement"]) >= set(ETT_COLUMNS)
    assert [i["timestamp"] for i in window if i["request_id"] == rid] == [
        p["timestamp"] for p in r.json()["predictions"][2:5]
    ]


def test_feedback_is_matched_and_updates_live_mae(served: Env) -> None:
    asset = "ETTh2"
    b = body(HISTORY, start=100, asset=asset)
    with served.client() as c:
        pred = c.post("/v1/predict", json=b, headers=served.headers()).json()["predictions"][0]
        h1 = pred["forecasts"][0]
        observed = h1["oil_temperature_c"] + 2.5
        fb = {"asset_id": asset, "observations": [
            {"timestamp": h1["target_time"], "value": observed},
            {"timestamp": "1999-01-01T00:00:00Z", "value": 20.0},
        ]}  # fmt: skip
        r = c.post("/v1/feedback", json=fb, headers=served.headers())
        assert r.status_code == 200, r.text
        out = r.json()
        text = c.get("/metrics").text
        bad = c.post(
            "/v1/feedback",
            json={
                "asset_id": asset,
                "observations": [{"timestamp": h1["target_time"], "value": "NaN"}],
            },
            headers=served.headers(),
        )
    assert out["received"] == 2
    assert out["observations"][0]["matched"] >= 1 and out["observations"][1]["matched"] == 0
    assert "h1" in out["live_mae"]
    assert sample(text, "vigie_feedback_observations_total", target="OT", horizon="h1") >= 1
    assert sample(text, "vigie_feedback_abs_error_total", target="OT", horizon="h1") >= 2.5 - 1e-6
    assert sample(text, "vigie_live_mae", target="OT", horizon="h1") > 0
    assert bad.status_code == 422
    with served.client() as c:
        hot = c.post(
            "/v1/feedback",
            json={
                "asset_id": asset,
                "observations": [{"timestamp": h1["target_time"], "value": 900}],
            },
            headers=served.headers(),
        )
    assert hot.status_code == 422
    assert hot.json()["error"]["details"][0]["field"] == "body.observations.0.value"
