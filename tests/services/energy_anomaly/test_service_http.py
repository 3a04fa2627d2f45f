"""energy-anomaly end to end: gunicorn (2 uvicorn workers), a real Redis, real tokens."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest

from tests.services.energy_anomaly.anomalies import HISTORY, KINDS, SERIES, request, with_anomaly
from tests.services.energy_anomaly.conftest import SERVICE, Env
from tests.support.http_checks import BadInput, bad_inputs, mutated, with_literal
from vigie.contract.batch import Batch
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc
from vigie_services.energy_anomaly.service import DayMeasurement, EnergyAnomalyService

pytestmark = pytest.mark.integration


def _post(env: Env, body: dict) -> httpx.Response:
    with env.client() as c:
        return c.post("/v1/predict", json=body, headers=env.headers())


def _direct(model: md.EnergyModel, body: dict) -> sc.Scores:
    ms = [DayMeasurement.model_validate(m) for m in body["measurements"]]
    return sc.score(model, body["asset_id"], EnergyAnomalyService.series_input(Batch("x", ms)))


# -- predictions --------------------------------------------------------------------------------
def test_single_day_matches_the_model_called_directly(
    served: Env, energy_model: md.EnergyModel
) -> None:
    body = request()
    r = _post(served, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["service"] == SERVICE and out["asset_id"] == SERIES
    assert len(out["predictions"]) == 1
    pred = out["predictions"][0]
    assert pred["timestamp"] == body["measurements"][-1]["timestamp"]
    s = _direct(energy_model, body)
    assert pred["forecast_mwh"] == pytest.approx(s.forecast[0], abs=1e-2)
    assert pred["actual_mwh"] == pytest.approx(s.actual[0], abs=1e-2)
    assert pred["anomaly_score"] == pytest.approx(s.score[0], abs=1e-3)
    assert pred["residual_mwh"] == pytest.approx(s.actual[0] - s.forecast[0], abs=1e-2)
    assert set(pred["components"]) == {
        "residual_z", "profile_z", "missing_hours", "stuck_meter", "shifted_profile"}  # fmt: skip
    assert pred["level"] == "NORMAL" and pred["kinds"] == []
    assert out["level"] == "NORMAL"


def test_batch_gives_one_prediction_per_day_after_the_history(
    served: Env, energy_model: md.EnergyModel
) -> None:
    body = request(n=HISTORY + 20, end=60)
    r = _post(served, body)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 20
    assert [p["timestamp"] for p in preds] == [
        m["timestamp"] for m in body["measurements"][HISTORY:]
    ]
    s = _direct(energy_model, body)
    assert np.allclose([p["forecast_mwh"] for p in preds], s.forecast, atol=1e-2)
    assert [p["level"] for p in preds] == s.levels


@pytest.mark.parametrize("case", list(KINDS))
def test_each_anomaly_kind_is_flagged_with_its_kind(served: Env, case: str) -> None:
    r = _post(served, with_anomaly(case))
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert pred["level"] in ("ALERTE", "CRITIQUE"), pred
    assert KINDS[case] in pred["kinds"], pred
    assert r.json()["level"] == pred["level"]


def test_missing_hours_as_null_are_reported(served: Env) -> None:
    body = with_anomaly("missing_hours")
    body["measurements"][-1]["daily_mwh"] = None  # the total is rebuilt from the hours
    body["measurements"][2]["hourly_mwh"][0] = None  # a missing hour in the history too
    r = _post(served, body)
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert pred["components"]["missing_hours"] == 3
    assert "missing_hours" in pred["kinds"] and pred["actual_mwh"] > 0


def test_card_holds_metrics_thresholds_and_series(served: Env) -> None:
    card = served.card()
    assert set(card["metrics"]["forecast_by_candidate"]) >= {"ridge", "random_forest"}
    for m in card["metrics"]["forecast_by_candidate"].values():
        assert {"mae", "rmse", "r2", "mape"} <= set(m)
    assert set(card["baselines"]) == {"yesterday", "same_day_last_week"}
    assert card["metrics"]["anomaly"]["roc_auc"] > 0.9
    assert set(card["metrics"]["anomaly"]["per_kind"]) <= {
        "spike", "drop", "stuck_meter", "shifted_profile", "missing_hours"}  # fmt: skip
    th = card["thresholds"]
    assert th["critique"] > th["alerte"] > 0
    assert SERIES in card["series"] and card["history_days"] == HISTORY
    assert set(card["clusters"]["kmeans"]) == set(card["series"])


def test_level_event_carries_the_score_and_threshold(served: Env) -> None:
    with served.client() as c:
        out = c.post(
            "/v1/predict", json=with_anomaly("spike"),
            headers=served.headers(**{"X-Request-ID": "energy-event"}),
        ).json()  # fmt: skip
    ev = served.level_event("energy-event")
    assert ev["level"] == out["level"]
    assert ev["unit"] == "score" and ev["threshold"] > 0


# -- clusters -----------------------------------------------------------------------------------
def test_clusters_are_served_with_the_predict_scope(served: Env) -> None:
    with served.client() as c:
        assert c.get("/v1/clusters").status_code == 401
        wrong = served.token(scopes="predict:turbine-nox")
        r = c.get("/v1/clusters", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 403
        r = c.get("/v1/clusters", headers=served.headers())
    assert r.status_code == 200, r.text
    out = r.json()
    assert (
        set(out["series"]) == set(out["kmeans"]["assignments"]) == set(out["dbscan"]["assignments"])
    )
    assert {"n_clusters"} <= set(out["kmeans"]["parameters"])
    assert {"eps", "min_samples"} <= set(out["dbscan"]["parameters"])
    for cluster in out["kmeans"]["clusters"]:
        assert len(cluster["centroid"]) == 24 and cluster["members"]


# -- auth ---------------------------------------------------------------------------------------


# -- bad input ----------------------------------------------------------------------------------
def _mutate(fn) -> bytes:  # type: ignore[no-untyped-def]
    return mutated(request(), fn)


def _literal(i: int, literal: str) -> str:
    return with_literal(request(), ("measurements", i, "daily_mwh"), literal)


def _hour(i: int, h: int, value: object):  # type: ignore[no-untyped-def]
    return lambda b: b["measurements"][i]["hourly_mwh"].__setitem__(h, value)


BAD_INPUTS = {
    "negative hour": (lambda: _mutate(_hour(2, 5, -3.0)), "body.measurements.2.hourly_mwh.5"),
    "negative daily": (lambda: _mutate(lambda b: b["measurements"][1].update(daily_mwh=-1)),
                       "body.measurements.1.daily_mwh"),
    "nan": (lambda: _literal(3, "NaN"), "body.measurements.3.daily_mwh"),
    "infinity": (lambda: _literal(0, "Infinity"), "body.measurements.0.daily_mwh"),
    "23 hours": (lambda: _mutate(lambda b: b["measurements"][4]["hourly_mwh"].pop()),
                 "body.measurements.4.hourly_mwh"),
    "25 hours": (lambda: _mutate(lambda b: b["measurements"][4]["hourly_mwh"].append(1.0)),
                 "body.measurements.4.hourly_mwh"),
    "text hour": (lambda: _mutate(_hour(0, 0, "cold")), "body.measurements.0.hourly_mwh.0"),
    "unknown field": (lambda: _mutate(lambda b: b["measurements"][0].update(colour="red")),
                      "body.measurements.0.colour"),
    "unknown series": (lambda: _mutate(lambda b: b.update(asset_id="grtgaz.atlantis")),
                       "body.asset_id"),
    "invalid asset id": (lambda: _mutate(lambda b: b.update(asset_id="grtgaz/île")),
                         "body.asset_id"),
    "empty batch": (lambda: _mutate(lambda b: b.update(measurements=[])), "body.measurements"),
    "too little history": (lambda: orjson.dumps(request(n=HISTORY)), "body.measurements"),
    "gap in the days": (lambda: _mutate(lambda b: b["measurements"].pop(3)),
                        "body.measurements.3.timestamp"),
    "no data at all": (lambda: _mutate(lambda b: b["measurements"][1].update(
        hourly_mwh=[None] * 24, daily_mwh=None)), "body.measurements.1.hourly_mwh"),
    "naive timestamp": (lambda: _mutate(lambda b: b["measurements"][0].update(
        timestamp="2023-01-01T00:00:00")), "body.measurements.0.timestamp"),
}  # fmt: skip


@bad_inputs(BAD_INPUTS)
def test_bad_input_is_a_422_naming_the_field(served: Env, bad: BadInput) -> None:
    bad.assert_refused_by(served)


def test_no_5xx_after_bad_inputs(served: Env) -> None:
    served.assert_no_server_error()
