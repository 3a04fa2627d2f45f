"""turbine-nox keeps serving the static model when its correction state (Redis) is down."""

from __future__ import annotations

import pytest

from tests.services.turbine_nox.conftest import Env
from tests.services.turbine_nox.synthetic import measurements, turbine_frame

pytestmark = pytest.mark.integration

FRAME = turbine_frame(rows_per_year=50, years=(2015,), seed=9)


def test_static_predictions_say_so_when_redis_is_down(served: Env) -> None:
    payload = {"asset_id": "GT-R", "measurements": measurements(FRAME, slice(0, 30))}
    for m, nox in zip(payload["measurements"], FRAME.NOX, strict=False):
        m["NOX"] = float(nox) - 8.0
    with served.client() as c:
        assert c.post("/v1/predict", json=payload, headers=served.headers()).status_code == 200
        up = c.post("/v1/predict", json={**payload, "measurements": payload["measurements"][:1]},
                    headers=served.headers()).json()["predictions"][0]  # fmt: skip
        served.redis.stop()
        r = c.post("/v1/predict", json=payload, headers=served.headers())
    assert up["calibration"]["status"] == "corrected"
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        assert p["calibration"]["status"] == "unavailable"
        assert p["calibration"]["learning"] == "not learned: correction state unavailable"
        assert p["nox_mg_m3"] == p["nox_static_mg_m3"]
