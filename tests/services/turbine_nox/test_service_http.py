"""turbine-nox end to end: gunicorn (2 uvicorn workers), a real Redis, real tokens."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.services.turbine_nox.conftest import CONFIGURED, CONFIGURED_LIMITS, SERVICE, Env
from tests.services.turbine_nox.synthetic import INPUTS, measurements, turbine_frame
from tests.support.http_checks import BadInput, bad_inputs, mutated, sample, with_literal
from vigie.contract.levels import Level
from vigie_services.turbine_nox.service import AssetLimits, level_of

pytestmark = pytest.mark.integration

FRAME = turbine_frame(rows_per_year=200, years=(2015,), seed=42)


def body(n: int = 1, start: int = 0, asset: str = "GT1", **kw: object) -> dict:
    return {"asset_id": asset, "measurements": measurements(FRAME, slice(start, start + n), **kw)}  # type: ignore[arg-type]


def static(env: Env, start: int, n: int) -> dict[str, np.ndarray]:
    x = FRAME[list(INPUTS)].to_numpy()[start : start + n]
    return env.joblib_model().static(x)


def post(c: httpx.Client, env: Env, payload: dict) -> dict:
    r = c.post("/v1/predict", json=payload, headers=env.headers())
    assert r.status_code == 200, r.text
    return r.json()


# -- predictions ----------------------------------------------------------------------------------
def test_single_prediction_is_the_static_model_before_any_analyser_value(served: Env) -> None:
    with served.client() as c:
        out = post(c, served, body(asset="GT-FRESH"))
    assert out["service"] == SERVICE and out["asset_id"] == "GT-FRESH"
    (p,) = out["predictions"]
    want = static(served, 0, 1)
    assert p["nox_static_mg_m3"] == pytest.approx(want["NOX"][0], abs=1e-3)
    assert p["co_static_mg_m3"] == pytest.approx(want["CO"][0], abs=1e-3)
    assert p["nox_mg_m3"] == p["nox_static_mg_m3"] and p["co_mg_m3"] == p["co_static_mg_m3"]
    assert p["calibration"]["status"] == "static"
    assert p["calibration"]["nox_correction_mg_m3"] == 0.0
    assert "nox_residual_mg_m3" not in p
    assert p["limits"] == AssetLimits().model_dump()
    assert set(p["inputs"]) == set(INPUTS)


def test_batch_gives_one_prediction_per_measurement_in_order(served: Env) -> None:
    n = 48
    with served.client() as c:
        out = post(c, served, body(n, start=10, asset="GT-BATCH"))
    preds = out["predictions"]
    assert len(preds) == n
    want = static(served, 10, n)
    assert np.allclose([p["nox_static_mg_m3"] for p in preds], want["NOX"], atol=1e-3)
    assert np.allclose([p["co_static_mg_m3"] for p in preds], want["CO"], atol=1e-3)
    stamps = [p["timestamp"] for p in preds]
    assert stamps == sorted(stamps)
    rank = ["NORMAL", "ALERTE", "CRITIQUE"]
    assert out["level"] == max((p["level"] for p in preds), key=rank.index)


def test_levels_follow_the_asset_limits(served: Env) -> None:
    with served.client() as c:
        configured = post(c, served, body(24, asset=CONFIGURED))["predictions"]
        default = post(c, served, body(24, asset="GT-DEFAULT"))["predictions"]
    for preds, limits in (
        (configured, AssetLimits(**CONFIGURED_LIMITS)),
        (default, AssetLimits()),
    ):
        for p in preds:
            assert p["limits"] == limits.model_dump()
            level, _ = level_of(p["nox_mg_m3"], p["co_mg_m3"], limits)
            assert p["level"] == level.value
    # synthetic NOx is ~50-80 mg/m3: above the configured 40, below the default ALERTE 90
    assert {p["level"] for p in configured} == {Level.CRITIQUE.value}
    assert {p["level"] for p in default} == {Level.NORMAL.value}


# -- online recalibration -----------------------------------------------------------------------
def test_feedback_recalibrates_that_asset_across_workers(served: Env) -> None:
    asset, n = "GT-FB", 40
    with served.client() as c:
        first = post(c, served, body(n, asset=asset))["predictions"]
        time.sleep(0.5)  # both workers flush their prediction log
        obs = [
            {"timestamp": p["timestamp"], "value": round(p["nox_static_mg_m3"] - 10.0, 3)}
            for p in first
        ]
        r = c.post(
            "/v1/feedback", json={"asset_id": asset, "observations": obs}, headers=served.headers()
        )
        assert r.status_code == 200, r.text
        fb = r.json()
        assert fb["matched_forecasts"] == n
        assert fb["live_mae"]["h0"] == pytest.approx(10.0, abs=1e-2)
        # several requests (operating points already seen): whichever worker answers sees the
        # shared correction
        later = [post(c, served, body(3, start=3 * k, asset=asset)) for k in range(6)]
        other = post(c, served, body(3, start=100, asset="GT-OTHER"))
        text = c.get("/metrics").text
    for out in later:
        for p in out["predictions"]:
            cal = p["calibration"]
            assert cal["status"] == "corrected" and cal["nox_values_learned"] == n
            # 40 values, shrunk a little by the ridge prior towards 0 (the static model)
            assert cal["nox_correction_mg_m3"] == pytest.approx(-10.0, abs=2.5)
            assert p["nox_mg_m3"] == pytest.approx(p["nox_static_mg_m3"] - 10.0, abs=2.5)
            assert cal["nox_recent_static_mae_mg_m3"] == pytest.approx(10.0, abs=0.1)
    for p in other["predictions"]:
        assert p["calibration"]["status"] == "static"
        assert p["nox_mg_m3"] == p["nox_static_mg_m3"]
    assert sample(text, "vigie_live_mae", target="NOX", horizon="h0") == pytest.approx(10, abs=0.1)


def test_resent_feedback_is_learned_once(served: Env) -> None:
    asset = "GT-RESEND"
    with served.client() as c:
        preds = post(c, served, body(5, asset=asset))["predictions"]
        time.sleep(0.5)
        obs = [{"timestamp": p["timestamp"], "value": p["nox_static_mg_m3"] + 3} for p in preds]
        for _ in range(3):
            fb = {"asset_id": asset, "observations": obs}
            assert c.post("/v1/feedback", json=fb, headers=served.headers()).status_code == 200
        p = post(c, served, body(1, start=50, asset=asset))["predictions"][0]
    assert p["calibration"]["nox_values_learned"] == 5


def test_measurements_carrying_the_analyser_values_recalibrate(served: Env) -> None:
    asset, n = "GT-MEAS", 40
    payload = body(n, asset=asset)
    want = static(served, 0, n)
    for m, nox, co in zip(payload["measurements"], want["NOX"], want["CO"], strict=True):
        m["NOX"], m["CO"] = round(float(nox) + 6.0, 4), round(float(co) + 1.0, 4)
    with served.client() as c:
        first = post(c, served, payload)["predictions"]
        later = post(c, served, body(4, start=120, asset=asset))["predictions"]
    # scored with what was known before: static values, residual = measured - corrected
    assert first[0]["calibration"]["status"] == "static"
    assert first[0]["calibration"]["learning"] == f"{2 * n} learned"
    for p in first:
        assert p["nox_residual_mg_m3"] == pytest.approx(6.0, abs=2e-3)
        assert p["co_residual_mg_m3"] == pytest.approx(1.0, abs=2e-3)
        assert p["nox_measured_mg_m3"] - p["nox_mg_m3"] == pytest.approx(6.0, abs=2e-3)
    for p in later:
        cal = p["calibration"]
        assert cal["nox_values_learned"] == n and cal["co_values_learned"] == n
        assert cal["nox_correction_mg_m3"] == pytest.approx(6.0, abs=1.5)
        assert cal["co_correction_mg_m3"] == pytest.approx(1.0, abs=0.35)


def test_a_stuck_analyser_sent_with_measurements_does_not_drag(served: Env) -> None:
    asset = "GT-STUCK"
    payload = body(30, asset=asset)
    for m in payload["measurements"]:
        m["NOX"] = 12.5  # frozen far below the ~60 mg/m3 the model predicts
    with served.client() as c:
        first = post(c, served, payload)["predictions"]
        later = post(c, served, body(2, start=150, asset=asset))["predictions"]
    assert first[0]["calibration"]["learning"] == "1 learned, 29 stuck"
    # one value learned, shrunk by the ridge prior (weight 1/3): far from the ~-50 mg/m3 the
    # stuck analyser says
    assert later[0]["calibration"]["nox_correction_mg_m3"] > -20.0


# -- auth -----------------------------------------------------------------------------------------


# -- bad input ------------------------------------------------------------------------------------
def _mutate(fn) -> bytes:  # type: ignore[no-untyped-def]
    return mutated(body(3), fn)


def _literal(i: int, name: str, literal: str) -> str:
    return with_literal(body(3), ("measurements", i, name), literal)


BAD_INPUTS = {
    "nan": (lambda: _literal(1, "TIT", "NaN"), "body.measurements.1.TIT"),
    "infinity": (lambda: _literal(0, "AT", "Infinity"), "body.measurements.0.AT"),
    "nan analyser value": (lambda: _literal(2, "NOX", "NaN"), "body.measurements.2.NOX"),
    "missing field": (lambda: _mutate(lambda b: b["measurements"][1].pop("CDP")),
                      "body.measurements.1.CDP"),
    "unknown field": (lambda: _mutate(lambda b: b["measurements"][0].update(SO2=1.0)),
                      "body.measurements.0.SO2"),
    "empty batch": (lambda: _mutate(lambda b: b.update(measurements=[])), "body.measurements"),
    "ambient temperature 80 °C": (lambda: _mutate(lambda b: b["measurements"][2].update(AT=80.0)),
                                  "body.measurements.2.AT"),
    "negative humidity": (lambda: _mutate(lambda b: b["measurements"][0].update(AH=-3.0)),
                          "body.measurements.0.AH"),
    "turbine inlet 3000 °C": (lambda: _mutate(lambda b: b["measurements"][1].update(TIT=3000.0)),
                              "body.measurements.1.TIT"),
    "negative NOx": (lambda: _mutate(lambda b: b["measurements"][0].update(NOX=-1.0)),
                     "body.measurements.0.NOX"),
    "naive timestamp": (lambda: _mutate(lambda b: b["measurements"][0].update(
        timestamp="2015-01-01T00:00:00")), "body.measurements.0.timestamp"),
    "wrong type": (lambda: _mutate(lambda b: b["measurements"][0].update(TEY="full")),
                   "body.measurements.0.TEY"),
}  # fmt: skip


@bad_inputs(BAD_INPUTS)
def test_bad_input_is_422_naming_the_field(served: Env, bad: BadInput) -> None:
    bad.assert_refused_by(served)


def test_bad_feedback_is_422(served: Env) -> None:
    with served.client() as c:
        for value in (-5.0, 9999.0):
            fb = {"asset_id": "GT1", "observations": [{"timestamp": "2015-01-01T00:00:00Z",
                                                       "value": value}]}  # fmt: skip
            r = c.post("/v1/feedback", json=fb, headers=served.headers())
            assert r.status_code == 422
            assert r.json()["error"]["details"][0]["field"] == "body.observations.0.value"


def test_every_real_row_is_accepted(served: Env) -> None:
    """The extreme values of the real 2011-2014 data pass the physical bounds."""
    extremes = [
        {"AT": 0.29, "AP": 985.85, "AH": 100.2, "AFDP": 7.611, "GTEP": 17.878, "TIT": 1000.8,
         "TAT": 511.04, "TEY": 100.03, "CDP": 9.852, "NOX": 119.91, "CO": 44.103},
        {"AT": 34.929, "AP": 1034.2, "AH": 25.987, "AFDP": 2.087, "GTEP": 37.402, "TIT": 1100.9,
         "TAT": 550.61, "TEY": 174.61, "CDP": 15.081, "NOX": 27.183, "CO": 0.0},
    ]  # fmt: skip
    ms = [{"timestamp": f"2014-06-01T0{i}:00:00Z", **m} for i, m in enumerate(extremes)]
    with served.client() as c:
        r = c.post(
            "/v1/predict", json={"asset_id": "GT-EXT", "measurements": ms}, headers=served.headers()
        )
    assert r.status_code == 200, r.text


def test_model_card_holds_static_and_online_validation(served: Env) -> None:
    card = served.card()
    m = card["metrics"]["validation_2014"]
    assert {"nox_r2", "nox_r2_online", "co_mae", "co_mae_online"} <= set(m)
    assert set(card["hyperparameters"]["candidates"]) == {"ridge", "hist_gradient_boosting"}
    assert card["baselines"]["climatology"]["nox_mae"] > 0
    assert card["thresholds"]["defaults"] == AssetLimits().model_dump()
