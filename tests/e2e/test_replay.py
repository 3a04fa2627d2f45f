"""`vigie replay` through the gateway, over HTTPS, to every prediction service, as an integration
would run it: credentials of the launcher's dev client, a token from /auth/token, batches with
idempotency keys, retries when the gateway answers 429 (the e2e fleet allows 20 requests/s per
token)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.fleet import Fleet

pytestmark = pytest.mark.integration

# The synthetic files `vigie train` used for the fleet's models (tests/e2e/conftest.py).
FILES = {
    "solar-flare": "solar_flare/daily_train.csv",
    "gamma-classifier": "gamma/train.csv",
    "transformer-temperature": "transformer/ETTh1_train.csv",
    "turbine-nox": "turbine_nox/train.csv",
    "energy-anomaly": "energy/gas_regional_daily_train.csv",
}


@pytest.mark.parametrize("service", list(FILES))
def test_replay_reaches_every_service_through_the_gateway(fleet: Fleet, service: str) -> None:
    data = next(fleet.root.parent.glob(f"fleet-models*/data/{FILES[service]}"))
    done = subprocess.run(
        [sys.executable, "-m", "vigie", "replay", service, "--data", str(data),
         "--gateway", fleet.https_url, "--cacert", str(fleet.cert),
         "--batch", "2", "--limit", "120", "--rate", "0", "--json"],
        env=fleet.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["service"] == service
    assert summary["rows"] == 120 and summary["requests"] == 60 == summary["succeeded"]
    assert sum(summary["levels"].values()) == summary["predictions"] >= 120
    # As fast as answers come, over a 20/s limit per token: when the gateway answers 429 the
    # client waits and retries with the same key (tests/shared/client/test_replay.py checks how), so
    # in the end every batch succeeded and no error remains.
    assert summary["token_fetches"] == 1 and summary["errors_by_status"] == {}
