"""gamma-classifier end to end: gunicorn (2 uvicorn workers), a real Redis, real tokens."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from tests.services.gamma_classifier.conftest import (
    SERVICE,
    STRICT_FPR,
    Boundary,
    Env,
    Pool,
    Trained,
    as_values,
)
from tests.services.gamma_classifier.synthetic import START, events, gamma_frame
from tests.support.http_checks import BadInput, bad_inputs, mutated, with_literal
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier import features as feats
from vigie_services.gamma_classifier import metrics
from vigie_services.gamma_classifier.significance import li_ma_significance

pytestmark = pytest.mark.integration

FRAME = gamma_frame(400, seed=42)
ROWS = FRAME[list(feats.COLUMNS)].to_dict("records")
RANK = ["NORMAL", "ALERTE", "CRITIQUE"]


def body(rows: list[dict[str, Any]] | None = None, asset: str = "MAGIC-1", **kw: Any) -> dict:
    return {"asset_id": asset, "measurements": events(ROWS[:20] if rows is None else rows, **kw)}


def predict(env: Env, payload: dict, **headers: str) -> dict:
    with env.client() as c:
        r = c.post("/v1/predict", json=payload, headers=env.headers(**headers))
    assert r.status_code == 200, r.text
    return r.json()


def designed(pool: Pool, gammas: int, hadrons: int) -> list[dict[str, Any]]:
    return pool.hadron_like[:hadrons] + pool.gamma_like[:gammas]


# -- predictions --------------------------------------------------------------------------------
def test_single_event_matches_the_model_called_directly(served: Env, trained: Trained) -> None:
    out = predict(served, body(ROWS[:1]))
    assert out["service"] == SERVICE and out["asset_id"] == "MAGIC-1"
    assert out["model_version"] == trained.card.version
    [pred] = out["predictions"]
    assert pred["timestamp"] == START.isoformat().replace("+00:00", "Z")
    expected = clf.p_gamma(trained.model, as_values(ROWS[:1]))[0]
    assert pred["p_gamma"] == pytest.approx(expected, abs=1e-12)
    cut = trained.card.thresholds["operating_point"]["probability_threshold"]
    assert pred["probability_threshold"] == cut
    assert pred["class"] == ("gamma" if expected >= cut else "hadron")
    assert out["summary"]["events"] == 1


def test_batch_gives_one_answer_per_event_equal_to_the_model(served: Env, trained: Trained) -> None:
    rows = ROWS[:300]
    out = predict(served, body(rows))
    preds = out["predictions"]
    assert len(preds) == 300
    expected = clf.p_gamma(trained.model, as_values(rows))
    np.testing.assert_allclose([p["p_gamma"] for p in preds], expected, rtol=0, atol=1e-12)
    stamps = [datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in preds]
    assert stamps == [START + timedelta(milliseconds=i) for i in range(300)]  # request order
    cut = trained.card.thresholds["operating_point"]["probability_threshold"]
    assert [p["class"] for p in preds] == ["gamma" if q >= cut else "hadron" for q in expected]


def test_summary_counts_and_li_ma_significance(served: Env, trained: Trained) -> None:
    out = predict(served, body(ROWS[:250]))
    s = out["summary"]
    classes = [p["class"] for p in out["predictions"]]
    n_on = classes.count("gamma")
    n_off = classes.count("hadron")
    op = trained.card.thresholds["operating_point"]
    f = op["hadron_fpr"]
    alpha = f / (1 - f)
    assert s["events"] == 250 and s["gamma_classified"] == n_on and s["hadron_classified"] == n_off
    assert s["hadron_fpr"] == f and s["gamma_efficiency"] == op["gamma_efficiency"]
    assert s["alpha"] == pytest.approx(alpha)
    assert s["estimated_hadrons"] == pytest.approx(n_off / (1 - f))
    assert s["expected_background"] == pytest.approx(alpha * n_off)
    assert s["excess"] == pytest.approx(n_on - alpha * n_off)
    assert s["estimated_gammas"] == pytest.approx(
        (n_on - alpha * n_off) * (1 - f) / (op["gamma_efficiency"] - f)
    )
    assert s["significance_sigma"] == pytest.approx(li_ma_significance(n_on, n_off, alpha))
    # the synthetic mix is 65 % gamma: far above a background-only batch
    assert s["significance_sigma"] > 5 and s["level"] == out["level"] == "CRITIQUE"
    assert {p["level"] for p in out["predictions"]} == {"CRITIQUE"}
    assert s["alerte_sigma"] == 3.0 and s["critique_sigma"] == 5.0
    assert "Li & Ma" in s["method"] and s["message"] and s["recommendation"]


def test_a_background_only_batch_is_normal_with_a_negative_significance(
    served: Env, pool: Pool
) -> None:
    out = predict(served, body(designed(pool, 0, 60)))
    s = out["summary"]
    assert s["gamma_classified"] == 0 and s["excess"] < 0
    alpha = pool.hadron_fpr / (1 - pool.hadron_fpr)
    assert s["significance_sigma"] == pytest.approx(-np.sqrt(2 * 60 * np.log(1 + alpha)))
    assert out["level"] == "NORMAL"
    assert {p["level"] for p in out["predictions"]} == {"NORMAL"}


@pytest.mark.parametrize(
    ("asset", "which", "expected"),
    [
        # default thresholds 3 / 5: the smallest batches reaching them, and one event fewer
        ("MAGIC-1", "k3-1", "NORMAL"),
        ("MAGIC-1", "k3", "ALERTE"),
        ("MAGIC-1", "k5-1", "ALERTE"),
        ("MAGIC-1", "k5", "CRITIQUE"),
        # thresholds configured exactly at the batch's significance: at counts as reached
        ("EXACT-1", "k3-1", "NORMAL"),
        ("EXACT-1", "k3", "ALERTE"),
        ("EXACT-1", "k5", "CRITIQUE"),
        # ... and one float step above it: not reached
        ("EXACT-2", "k3", "NORMAL"),
        ("EXACT-2", "k5", "ALERTE"),
    ],
)
def test_level_rule_at_its_boundaries(
    served: Env, pool: Pool, boundary: Boundary, asset: str, which: str, expected: str
) -> None:
    k = {"k3-1": boundary.k3 - 1, "k3": boundary.k3, "k5-1": boundary.k5 - 1, "k5": boundary.k5}
    gammas = k[which]
    out = predict(served, body(designed(pool, gammas, boundary.hadrons), asset=asset))
    s = out["summary"]
    assert s["gamma_classified"] == gammas and s["hadron_classified"] == boundary.hadrons
    assert s["significance_sigma"] == boundary.s[gammas]
    assert out["level"] == s["level"] == expected
    assert {p["level"] for p in out["predictions"]} == {expected}


def test_per_asset_operating_cut(served: Env, trained: Trained) -> None:
    rows = ROWS[:200]
    default = predict(served, body(rows))
    strict = predict(served, body(rows, asset="STRICT-1"))
    cut = trained.card.thresholds["operating_points"][f"hadron_fpr_{STRICT_FPR}"]
    s = strict["summary"]
    assert s["target_hadron_fpr"] == STRICT_FPR
    assert s["probability_threshold"] == cut["probability_threshold"]
    assert s["hadron_fpr"] == cut["hadron_fpr"] <= STRICT_FPR
    assert s["probability_threshold"] > default["summary"]["probability_threshold"]
    for p in strict["predictions"]:
        assert p["class"] == ("gamma" if p["p_gamma"] >= cut["probability_threshold"] else "hadron")
    assert s["gamma_classified"] < default["summary"]["gamma_classified"]
    # same probabilities: the cut is per asset, the model is not
    assert [p["p_gamma"] for p in strict["predictions"]] == [
        p["p_gamma"] for p in default["predictions"]
    ]


def test_per_asset_sigma_thresholds(served: Env, pool: Pool, boundary: Boundary) -> None:
    k = min(k for k, v in boundary.s.items() if v >= 1.0)  # between 1 and 2 sigma
    batch = designed(pool, k, boundary.hadrons)
    s_default = predict(served, body(batch))["summary"]
    sensitive = predict(served, body(batch, asset="SENSITIVE-1"))
    s = sensitive["summary"]
    assert s["significance_sigma"] == s_default["significance_sigma"] == boundary.s[k]
    assert 1.0 <= s["significance_sigma"] < 2.0 and s_default["level"] == "NORMAL"
    assert (s["alerte_sigma"], s["critique_sigma"]) == (1.0, 2.0)
    assert sensitive["level"] == "ALERTE"


def test_level_event_carries_the_batch_significance(served: Env, pool: Pool) -> None:
    rid = f"ev-{uuid.uuid4().hex}"
    batch = designed(pool, 40, 100)
    later = START + timedelta(hours=1)
    out = predict(served, body(batch, start=later), **{"X-Request-ID": rid})
    ev = served.level_event(rid)
    s = out["summary"]
    assert ev["service"] == SERVICE and ev["asset_id"] == "MAGIC-1"
    assert ev["level"] == out["level"] == "CRITIQUE"
    assert ev["unit"] == "sigma" and ev["value"] == pytest.approx(s["significance_sigma"])
    assert ev["threshold"] == 5.0 and "flaring source candidate" in ev["message"]
    last = later + timedelta(milliseconds=len(batch) - 1)
    assert datetime.fromisoformat(ev["observed_at"].replace("Z", "+00:00")) == last


def test_model_card_lists_every_candidate(served: Env) -> None:
    card = served.card()
    for name in ("logistic_regression", "random_forest", "hist_gradient_boosting"):
        m = card["metrics"]["candidates"][name]
        assert set(m["holdout"]) == set(metrics.METRIC_KEYS)
        assert set(m["cross_validation"]) == set(metrics.METRIC_KEYS)
    assert card["metrics"]["chosen"] in card["metrics"]["candidates"]
    assert card["thresholds"]["levels"]["alerte_sigma"] == 3.0
    assert [f["name"] for f in card["features"][:10]] == list(feats.COLUMNS)
    assert card["training_data"][0]["rows"] == 3000 and len(card["artifact"]["sha256"]) == 64


def test_openapi_documents_units_and_the_item_schema(served: Env) -> None:
    with served.client() as c:
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    event = schemas["GammaEvent"]["properties"]
    assert "mm" in event["fLength"]["description"] and "degrees" in event["fAlpha"]["description"]
    assert event["fAlpha"]["maximum"] == 90 and event["fSize"]["exclusiveMinimum"] == 0
    item = schemas["EventPrediction"]["properties"]
    assert item["class"]["enum"] == ["gamma", "hadron"] and "p_gamma" in item


# -- feedback ----------------------------------------------------------------------------------
def test_feedback_matches_events_and_updates_live_mae(served: Env) -> None:
    asset = f"FB-{uuid.uuid4().hex[:8]}"
    rows = FRAME.iloc[:12]
    start = START + timedelta(days=1)
    records = rows[list(feats.COLUMNS)].to_dict("records")
    out = predict(served, body(records, asset=asset, start=start))
    preds = out["predictions"]
    truth = (rows["class"] == "g").astype(int).tolist()
    fb = {
        "asset_id": asset,
        "observations": [
            {"timestamp": p["timestamp"], "value": y, "target": "is_gamma"}
            for p, y in zip(preds, truth, strict=True)
        ],
    }
    with served.client() as c:
        r = c.post("/v1/feedback", json=fb, headers=served.headers())
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["received"] == 12 and res["matched_forecasts"] == 12
    expected = np.mean([abs(y - p["p_gamma"]) for p, y in zip(preds, truth, strict=True)])
    assert res["live_mae"]["h0"] == pytest.approx(expected)
    fb["observations"] = [{**fb["observations"][0], "value": 0.5}]  # a label, not a probability
    with served.client() as c:
        r = c.post("/v1/feedback", json=fb, headers=served.headers())
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.observations.0.value"


# -- auth ---------------------------------------------------------------------------------------


# -- bad input ----------------------------------------------------------------------------------
def _mutate(fn) -> bytes:  # type: ignore[no-untyped-def]
    return mutated(body(), fn)


def _set(i: int, **values: Any) -> bytes:
    return _mutate(lambda b: b["measurements"][i].update(values))


def _literal(i: int, name: str, literal: str) -> str:
    """A body whose event ``i`` has ``name`` set to a raw JSON token such as NaN."""
    return with_literal(body(), ("measurements", i, name), literal)


BAD_INPUTS = {
    "negative size": (lambda: _set(2, fSize=-1.0), "body.measurements.2.fSize"),
    "zero size": (lambda: _set(2, fSize=0.0), "body.measurements.2.fSize"),
    "negative length": (lambda: _set(1, fLength=-3.0), "body.measurements.1.fLength"),
    "negative width": (lambda: _set(1, fWidth=-0.5), "body.measurements.1.fWidth"),
    "width above length": (lambda: _set(4, fLength=10.0, fWidth=12.0),
                           "body.measurements.4.fWidth"),
    "negative distance": (lambda: _set(0, fDist=-1.0), "body.measurements.0.fDist"),
    "huge distance": (lambda: _set(0, fDist=5e6), "body.measurements.0.fDist"),
    "alpha above 90": (lambda: _set(3, fAlpha=91.0), "body.measurements.3.fAlpha"),
    "negative alpha": (lambda: _set(3, fAlpha=-0.1), "body.measurements.3.fAlpha"),
    "ratio above 1": (lambda: _set(5, fConc=1.5), "body.measurements.5.fConc"),
    "negative ratio": (lambda: _set(5, fConc1=-0.1), "body.measurements.5.fConc1"),
    "conc1 above conc": (lambda: _set(6, fConc=0.2, fConc1=0.3), "body.measurements.6.fConc1"),
    "nan": (lambda: _literal(3, "fLength", "NaN"), "body.measurements.3.fLength"),
    "infinity": (lambda: _literal(5, "fM3Long", "Infinity"), "body.measurements.5.fM3Long"),
    "-infinity": (lambda: _literal(0, "fAsym", "-Infinity"), "body.measurements.0.fAsym"),
    "missing field": (lambda: _mutate(lambda b: b["measurements"][2].pop("fAlpha")),
                      "body.measurements.2.fAlpha"),
    "missing timestamp": (lambda: _mutate(lambda b: b["measurements"][2].pop("timestamp")),
                          "body.measurements.2.timestamp"),
    "wrong type": (lambda: _set(1, fWidth="wide"), "body.measurements.1.fWidth"),
    "unknown field": (lambda: _set(0, fEnergy=1.0), "body.measurements.0.fEnergy"),
    "unknown top-level field": (lambda: _mutate(lambda b: b.update(extra=1)), "body.extra"),
    "empty batch": (lambda: _mutate(lambda b: b.update(measurements=[])), "body.measurements"),
    "naive timestamp": (lambda: _set(0, timestamp="2024-03-01T22:00:00"),
                        "body.measurements.0.timestamp"),
    "invalid asset id": (lambda: orjson.dumps(body(asset="../etc")), "body.asset_id"),
    "not an object": (lambda: b"[1, 2, 3]", "body"),
}  # fmt: skip


@bad_inputs(BAD_INPUTS)
def test_bad_input_is_422_naming_the_field(served: Env, bad: BadInput) -> None:
    bad.assert_refused_by(served)


def test_several_domain_errors_are_all_named(served: Env) -> None:
    b = body()
    b["measurements"][1].update(fLength=5.0, fWidth=6.0)
    b["measurements"][7].update(fConc=0.1, fConc1=0.2)
    with served.client() as c:
        r = c.post("/v1/predict", json=b, headers=served.headers())
    assert r.status_code == 422
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert fields == ["body.measurements.1.fWidth", "body.measurements.7.fConc1"]


def test_real_data_extremes_are_accepted(served: Env) -> None:
    # the minimum and maximum of every column of the real training file
    lows = [4.2835, 0.0, 1.9413, 0.0131, 0.0003, -457.9161, -331.78, -205.8947, 0.0, 1.2826]
    highs = [334.177, 256.382, 5.3233, 0.893, 0.6752, 575.2407, 238.321, 179.851, 90.0, 495.561]
    rows = [dict(zip(feats.COLUMNS, v, strict=True)) for v in (lows, highs)]
    out = predict(served, body(rows))
    assert len(out["predictions"]) == 2


def test_no_5xx_after_all_of_the_above(served: Env) -> None:
    served.assert_no_server_error()
    with served.client() as c:
        assert c.get("/readyz").json()["status"] == "ready"
