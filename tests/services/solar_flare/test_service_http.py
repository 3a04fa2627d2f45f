"""solar-flare end to end: gunicorn (2 uvicorn workers), a real Redis, real tokens."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
import pandas as pd
import pytest

from tests.services.solar_flare.conftest import MAX_BATCH, SERVICE, Env, simulation
from tests.support.servers import wait_until
from vigie.models.store import ModelStore
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm

pytestmark = pytest.mark.integration

SIM = simulation()
FIRST = sm.WINDOW_DAYS - 1  # first day index with a full raw history
PROBS = ("probability_c_or_above", "probability_m_or_above", "probability_x")


def day_item(index: int, source: str = "summary") -> dict[str, Any]:
    payload = SIM.summary_json(index) if source == "summary" else SIM.raw_json(index)
    return {"timestamp": SIM.timestamp(index), source: payload}


def body(*items: dict[str, Any], asset: str = "SUN") -> dict[str, Any]:
    return {"asset_id": asset, "measurements": list(items) or [day_item(300)]}


def predict(env: Env, b: dict[str, Any], **headers: str) -> httpx.Response:
    with env.client() as c:
        return c.post("/v1/predict", json=b, headers=env.headers(**headers))


def _model(env: Env) -> md.FlareForecaster:
    store = ModelStore(Path(env.env["VIGIE_MODELS_DIR"]))
    version = store.current_version(SERVICE)
    model: md.FlareForecaster = joblib.load(store.service_dir(SERVICE) / version / "model.joblib")
    return model


def _card(env: Env) -> dict[str, Any]:
    with env.client() as c:
        r = c.get("/v1/model", headers=env.headers())
    assert r.status_code == 200, r.text
    card: dict[str, Any] = r.json()
    return card


def _direct(env: Env, indices: list[int]) -> np.ndarray:
    """The model called directly on the rows of the training table."""
    days = [pd.Timestamp(SIM.day(i)) for i in indices]
    rows = SIM.table.set_index("date").loc[days].reset_index()
    probs = md.predict_table(_model(env), rows)
    return np.column_stack([probs[k] for k in md.KEYS])


def _got(preds: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[p[k] for k in PROBS] for p in preds])


def stream_events(env: Env) -> list[dict[str, Any]]:
    entries = env.redis.client().xrange("vigie:levels")
    return [json.loads(fields[b"event"]) for _id, fields in entries]


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- predictions --------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["summary", "raw"])
def test_single_day_matches_the_model_called_directly(served: Env, source: str) -> None:
    r = predict(served, body(day_item(300, source)))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["service"] == SERVICE and out["asset_id"] == "SUN"
    assert out["model_version"] == _card(served)["version"]
    (pred,) = out["predictions"]
    assert pred["timestamp"] == SIM.timestamp(300)
    assert pred["day"] == SIM.day(300).isoformat()
    assert pred["forecast_day"] == (SIM.day(300) + timedelta(days=1)).isoformat()
    assert pred["source"] == source
    assert np.allclose(_got([pred]), _direct(served, [300]), atol=1e-6)
    c, m, x = (pred[k] for k in PROBS)
    assert 0 <= x <= m <= c <= 1
    assert pred["class_probabilities"] == pytest.approx(
        {"none": 1 - c, "C": c - m, "M": m - x, "X": x}, abs=2e-6
    )
    likely = max(pred["class_probabilities"], key=pred["class_probabilities"].get)
    assert pred["most_likely_class"] == likely
    assert pred["radio_blackout_hint"] == {"none": "none", "C": "none", "M": "R1-R2",
                                           "X": "R3-R5"}[likely]  # fmt: skip
    assert set(pred["summary"]) == set(sm.SUMMARY_NAMES)


def test_raw_and_summary_give_the_same_probabilities(served: Env) -> None:
    indices = list(range(FIRST, FIRST + 40)) + list(range(400, 440))
    for chunk in (indices[:40], indices[40:]):
        as_summary = predict(served, body(*[day_item(i, "summary") for i in chunk])).json()
        as_raw = predict(served, body(*[day_item(i, "raw") for i in chunk])).json()
        s, r = as_summary["predictions"], as_raw["predictions"]
        assert np.array_equal(_got(s), _got(r))
        assert [p["level"] for p in s] == [p["level"] for p in r]
        for ps, pr in zip(s, r, strict=True):
            assert {k: v for k, v in pr["summary"].items() if v is not None} == {
                k: v for k, v in ps["summary"].items() if k in sm.MODEL_INPUTS
            }


def test_days_since_beyond_the_raw_window_change_nothing(served: Env) -> None:
    quiet = next(
        i for i in range(FIRST, len(SIM.events) - 1)
        if SIM.summary_json(i)["days_since_last_M_or_X"] == sm.DAYS_SINCE_CAP
        and SIM.summary_json(i)["n_C_flares_today"] > 0
    )  # fmt: skip
    long_ago = {**SIM.summary_json(quiet), "days_since_last_M_or_X": 200, "days_since_last_X": 365}
    r = predict(
        served,
        body(
            day_item(quiet, "raw"),
            {"timestamp": SIM.timestamp(quiet), "summary": long_ago},
        ),
    )
    assert r.status_code == 200, r.text
    a, b = r.json()["predictions"]
    assert [a[k] for k in PROBS] == [b[k] for k in PROBS]


def test_batch_mixes_sources_one_prediction_per_day_in_order(served: Env) -> None:
    indices = list(range(200, 260))
    items = [day_item(i, "raw" if i % 3 == 0 else "summary") for i in indices]
    r = predict(served, body(*items))
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["timestamp"] for p in preds] == [SIM.timestamp(i) for i in indices]
    assert [p["source"] for p in preds] == [("raw" if i % 3 == 0 else "summary") for i in indices]
    assert np.allclose(_got(preds), _direct(served, indices), atol=1e-6)


def test_levels_follow_the_card_thresholds(served: Env) -> None:
    card = _card(served)
    th = card["thresholds"]
    t_m, t_x = th["alerte_probability_m_or_above"], th["critique_probability_x"]
    assert 0 < t_m < 1 and 0 < t_x < 1 and th["unit"] == "probability"
    indices = list(range(FIRST, len(SIM.events) - 1, 4))
    preds = []
    for start in range(0, len(indices), MAX_BATCH):
        r = predict(served, body(*[day_item(i) for i in indices[start : start + MAX_BATCH]]))
        assert r.status_code == 200, r.text
        preds += r.json()["predictions"]
    for p in preds:
        m, x = p["probability_m_or_above"], p["probability_x"]
        want = "CRITIQUE" if x >= t_x else "ALERTE" if m >= t_m else "NORMAL"
        assert p["level"] == want, p
        crossed = {c["probability"] for c in p["crossings"]}
        assert crossed == {n for n, v, t in (("probability_m_or_above", m, t_m),
                                              ("probability_x", x, t_x)) if v >= t}  # fmt: skip
        assert p["advice"]
    assert {p["level"] for p in preds} >= {"NORMAL", "ALERTE"}


def test_response_level_is_the_highest(served: Env) -> None:
    r = predict(served, body(*[day_item(i) for i in range(FIRST, FIRST + 150)]))
    out = r.json()
    rank = ["NORMAL", "ALERTE", "CRITIQUE"]
    assert out["level"] == max((p["level"] for p in out["predictions"]), key=rank.index)


def test_model_card_holds_metrics_baselines_and_thresholds(served: Env) -> None:
    card = _card(served)
    for key in ("c", "m", "x"):
        m = card["metrics"][key]
        assert {"tss", "hss", "roc_auc", "brier_skill_score", "persistence_tss"} <= set(m)
        for baseline in ("persistence", "climatology"):
            assert {"tss", "hss", "roc_auc", "brier_skill_score"} <= set(m[baseline])
        for cand in card["candidates"].values():
            assert {"tss", "hss", "roc_auc", "brier_skill_score"} <= set(cand["metrics"][key])
    assert {c["family"] for c in card["candidates"].values()} == {
        "logistic", "hist_gradient_boosting"
    }  # fmt: skip
    (data,) = card["training_data"]
    assert data["rows"] == len(SIM.table) and len(data["sha256"]) == 64
    assert data["time_range"]["start"] == f"{SIM.table['date'].iloc[0]:%Y-%m-%d}"
    assert all(f["unit"] for f in card["features"])
    assert (
        card["thresholds"]["operating_points"]["m"]
        == (card["thresholds"]["alerte_probability_m_or_above"])
    )
    assert card["training_time_s"] > 0


# -- auth ---------------------------------------------------------------------------------------
def test_no_token_is_401_with_challenge(served: Env) -> None:
    with served.client() as c:
        r = c.post("/v1/predict", json=body())
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"


def test_bad_tokens_are_401(served: Env) -> None:
    served.assert_bad_tokens_refused(body())


def test_missing_scope_is_403(served: Env) -> None:
    token = served.token(scopes=f"feedback:{SERVICE} predict:transformer-temperature")
    with served.client() as c:
        r = c.post("/v1/predict", json=body(), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert r.json()["error"]["details"] == [{"required_scope": f"predict:{SERVICE}"}]
        token = served.token(scopes=f"predict:{SERVICE}")
        fb = {
            "asset_id": "SUN",
            "observations": [{"timestamp": "2011-01-01T00:00:00Z", "value": 1}],
        }
        r = c.post("/v1/feedback", json=fb, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403


# -- bad input ----------------------------------------------------------------------------------
def _mutated(fn: Any, source: str = "raw", index: int = 300) -> bytes:
    b = body(day_item(index, source))
    fn(b["measurements"][0])
    return orjson.dumps(b)


def _literal(source: str, path: tuple[Any, ...], literal: str) -> str:
    """A body whose value at ``path`` (inside measurement 0's source) is a raw JSON token."""
    b = body(day_item(300, source))
    target = b["measurements"][0][source]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "__LITERAL__"
    return json.dumps(b).replace('"__LITERAL__"', literal)


def _set_flare(i: int, **kw: Any) -> Any:
    def apply(m: dict[str, Any]) -> None:
        m["raw"]["flares"][i].update(kw)

    return apply


def _outside_window(m: dict[str, Any]) -> None:
    day = date.fromisoformat(m["timestamp"][:10])
    m["raw"]["flares"].append(
        {"goes_class": "C1.0", "peak_time": f"{day - timedelta(days=27)}T12:00:00Z"}
    )


def _n_flares() -> int:
    return len(SIM.raw_json(300)["flares"])


M0 = "body.measurements.0"
BAD_INPUTS: dict[str, tuple[Any, int, str | None]] = {
    "class Q1.0": (lambda: _mutated(_set_flare(0, goes_class="Q1.0")), 422,
                   f"{M0}.raw.flares.0.goes_class"),
    "class M-2": (lambda: _mutated(_set_flare(1, goes_class="M-2")), 422,
                  f"{M0}.raw.flares.1.goes_class"),
    "class M": (lambda: _mutated(_set_flare(0, goes_class="M")), 422,
                f"{M0}.raw.flares.0.goes_class"),
    "class m2.3": (lambda: _mutated(_set_flare(0, goes_class="m2.3")), 422,
                   f"{M0}.raw.flares.0.goes_class"),
    "class C0": (lambda: _mutated(_set_flare(0, goes_class="C0")), 422,
                 f"{M0}.raw.flares.0.goes_class"),
    "class not a string": (lambda: _mutated(_set_flare(0, goes_class=2.3)), 422,
                           f"{M0}.raw.flares.0.goes_class"),
    "naive peak time": (lambda: _mutated(_set_flare(0, peak_time="2010-10-01T10:00:00")), 422,
                        f"{M0}.raw.flares.0.peak_time"),
    "peak outside the window": (lambda: _mutated(_outside_window), 422,
                                f"{M0}.raw.flares.{_n_flares()}.peak_time"),
    "peak after day d": (lambda: _mutated(_set_flare(0, peak_time=SIM.timestamp(301))), 422,
                         f"{M0}.raw.flares.0.peak_time"),
    "short sunspot history": (lambda: _mutated(lambda m: m["raw"].update(
        sunspot_numbers=m["raw"]["sunspot_numbers"][1:])), 422, f"{M0}.raw.sunspot_numbers"),
    "negative sunspot number": (lambda: _mutated(lambda m: m["raw"]["sunspot_numbers"].__setitem__(
        4, -3.0)), 422, f"{M0}.raw.sunspot_numbers.4"),
    "nan sunspot number": (lambda: _literal("raw", ("sunspot_numbers", 5), "NaN"), 422,
                           f"{M0}.raw.sunspot_numbers.5"),
    "missing flares": (lambda: _mutated(lambda m: m["raw"].pop("flares")), 422,
                       f"{M0}.raw.flares"),
    "negative count": (lambda: _mutated(lambda m: m["summary"].update(n_C_flares_today=-1),
                                        "summary"), 422, f"{M0}.summary.n_C_flares_today"),
    "fractional count": (lambda: _mutated(lambda m: m["summary"].update(n_M_flares_last_7d=1.5),
                                          "summary"), 422, f"{M0}.summary.n_M_flares_last_7d"),
    "negative flux": (lambda: _mutated(lambda m: m["summary"].update(max_xray_flux_today=-1e-6),
                                       "summary"), 422, f"{M0}.summary.max_xray_flux_today"),
    "nan in summary": (lambda: _literal("summary", ("sunspot_number",), "NaN"), 422,
                       f"{M0}.summary.sunspot_number"),
    "infinite flux": (lambda: _literal("summary", ("max_xray_flux_last_27d",), "Infinity"), 422,
                      f"{M0}.summary.max_xray_flux_last_27d"),
    "days_since over 365": (lambda: _mutated(lambda m: m["summary"].update(days_since_last_X=400),
                                             "summary"), 422, f"{M0}.summary.days_since_last_X"),
    "missing summary field": (lambda: _mutated(lambda m: m["summary"].pop("n_X_flares_last_3d"),
                                               "summary"), 422, f"{M0}.summary.n_X_flares_last_3d"),
    "unknown summary field": (lambda: _mutated(lambda m: m["summary"].update(colour="red"),
                                               "summary"), 422, f"{M0}.summary.colour"),
    "unknown day field": (lambda: _mutated(lambda m: m.update(colour="red")), 422, f"{M0}.colour"),
    "inconsistent windows": (lambda: _mutated(lambda m: m["summary"].update(
        n_C_flares_last_27d=m["summary"]["n_C_flares_last_7d"] - 1), "summary", 320), 422,
        f"{M0}.summary.n_C_flares_last_27d"),
    "both summary and raw": (lambda: _mutated(lambda m: m.update(summary=SIM.summary_json(300))),
                             422, M0),
    "neither summary nor raw": (lambda: _mutated(lambda m: m.pop("raw")), 422, M0),
    "timestamp not midnight": (lambda: _mutated(lambda m: m.update(
        timestamp="2010-10-28T06:00:00Z")), 422, f"{M0}.timestamp"),
    "naive timestamp": (lambda: _mutated(lambda m: m.update(timestamp="2010-10-28T00:00:00")),
                        422, f"{M0}.timestamp"),
    "empty batch": (lambda: orjson.dumps({"asset_id": "SUN", "measurements": []}), 422,
                    "body.measurements"),
    "invalid asset id": (lambda: orjson.dumps(body(asset="../etc")), 422, "body.asset_id"),
    "malformed json": (lambda: b'{"asset_id": "SUN", "measurements": [', 400, None),
    "not an object": (lambda: b"[1, 2, 3]", 422, "body"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_naming_the_field(served: Env, case: str) -> None:
    make, status, field = BAD_INPUTS[case]
    headers = served.headers(**{"Content-Type": "application/json"})
    with served.client() as c:
        r = c.post("/v1/predict", content=make(), headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if field is not None:
        assert field in [d["field"] for d in err["details"]], err


def test_errors_name_the_day_of_the_batch(served: Env) -> None:
    items = [day_item(300, "raw"), day_item(301, "raw"), day_item(302, "summary")]
    items[1]["raw"]["flares"].append({"goes_class": "C1.0", "peak_time": SIM.timestamp(302)})
    items[2]["summary"]["n_M_flares_last_3d"] = items[2]["summary"]["n_M_flares_last_7d"] + 1
    r = predict(served, body(*items))
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert any(f.startswith("body.measurements.1.raw.flares.") for f in fields), fields
    assert "body.measurements.2.summary.n_M_flares_last_7d" in fields, fields
    assert not any(f.startswith("body.measurements.0") for f in fields)


def test_no_5xx_in_the_metrics_after_bad_inputs(served: Env) -> None:
    with served.client() as c:
        text = c.get("/metrics").text
    assert not re.search(r'vigie_http_requests_total\{[^}]*status="5\d\d"', text), text


# -- events, history, feedback ------------------------------------------------------------------
def test_level_event_published_per_call_with_the_response_level(served: Env) -> None:
    rid = f"ev-{uuid.uuid4().hex}"
    out = predict(
        served, body(*[day_item(i) for i in range(300, 330)]), **{"X-Request-ID": rid}
    ).json()
    events = wait_until(
        lambda: [e for e in stream_events(served) if e["request_id"] == rid], what="level event"
    )
    assert len(events) == 1
    ev = events[0]
    assert ev["service"] == SERVICE and ev["asset_id"] == "SUN"
    assert ev["level"] == out["level"] and ev["model_version"] == out["model_version"]
    assert ev["unit"] == "probability" and 0 < ev["threshold"] < 1 and ev["message"]


def test_predictions_are_stored_with_their_measurement(served: Env) -> None:
    asset = f"GOES-{uuid.uuid4().hex[:8]}"
    r = predict(served, body(day_item(350, "raw"), day_item(351), asset=asset))
    assert r.status_code == 200
    with served.client() as c:
        items = wait_until(
            lambda: c.get(
                "/v1/predictions", params={"asset_id": asset}, headers=served.headers()
            ).json()["items"],
            what="stored predictions",
        )
    assert len(items) == 2
    assert "raw" in items[0]["measurement"] and "summary" in items[1]["measurement"]
    assert (
        items[0]["prediction"]["probability_m_or_above"]
        == (r.json()["predictions"][0]["probability_m_or_above"])
    )


def test_feedback_is_matched_and_updates_live_mae(served: Env) -> None:
    asset = f"DESK-{uuid.uuid4().hex[:8]}"
    pred = predict(served, body(day_item(360), asset=asset)).json()["predictions"][0]
    p_m = pred["probability_m_or_above"]
    outcome = 1.0
    fb = {"asset_id": asset, "observations": [
        {"timestamp": f"{pred['forecast_day']}T00:00:00Z", "value": outcome,
         "target": "flare_M_or_above_next_24h"},
        {"timestamp": "1999-01-01T00:00:00Z", "value": 0},
    ]}  # fmt: skip
    with served.client() as c:
        # the other worker may hold the prediction in its write queue for a moment
        wait_until(
            lambda: c.get(
                "/v1/predictions", params={"asset_id": asset}, headers=served.headers()
            ).json()["items"],
            what="stored prediction",
        )
        r = c.post("/v1/feedback", json=fb, headers=served.headers())
        assert r.status_code == 200, r.text
        text = c.get("/metrics").text
        wrong_target = {
            "timestamp": f"{pred['forecast_day']}T00:00:00Z",
            "value": 1,
            "target": "OT",
        }
        wrong = c.post(
            "/v1/feedback",
            json={"asset_id": asset, "observations": [wrong_target]},
            headers=served.headers(),
        )
    out = r.json()
    assert out["observations"][0]["matched"] >= 1 and out["observations"][1]["matched"] == 0
    assert out["live_mae"]["24h"] == pytest.approx(abs(outcome - p_m), abs=1e-6)
    # /metrics has no asset label (client input, unbounded): the MAE of every asset's recent
    # observed forecasts, here the only one of this module's service
    target = "flare_M_or_above_next_24h"
    assert metric(text, "vigie_live_mae", target=target, horizon="24h") == pytest.approx(
        abs(outcome - p_m), abs=1e-6
    )
    assert metric(text, "vigie_feedback_observations_total", target=target, horizon="24h") >= 1
    assert wrong.status_code == 422
