"""One fleet for the end-to-end tests: `vigie fleet run` on free ports, with synthetic models,
a webhook receiver and an SMTP server for alerting, and tight gateway limits to exercise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.services.gamma_classifier.synthetic import write_gamma_data
from tests.services.solar_flare.conftest import simulation
from tests.services.solar_flare.synthetic import write_solar_data
from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.fleet import Fleet, fleet_env, train_fleet_models
from tests.support.receivers import HttpReceiver, SmtpSink
from tests.support.servers import free_port
from tests.support.synthetic import write_transformer_data

WEBHOOK_SECRET = "e2e-webhook-secret"
# turbine-nox asset whose permit is so low that every forecast is above it: CRITIQUE.
OVER_PERMIT = "GT-E2E-HIGH"
CLIENT_RATE, CLIENT_BURST = 20, 20  # per token, so a quick burst of one client meets 429
MAX_BODY = "64k"

WRITERS = {
    "solar-flare": lambda d: write_solar_data(d, simulation()),
    "gamma-classifier": lambda d: write_gamma_data(d, n=3000, seed=0),
    "transformer-temperature": lambda d: write_transformer_data(d, hours=900),
    "turbine-nox": lambda d: write_turbine_data(d, rows_per_year=500),
    "energy-anomaly": write_gas_data,
}


@pytest.fixture(scope="session")
def fleet_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fleet_models(tmp_path_factory.mktemp("fleet-models"), WRITERS)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, fleet_models: Path) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    assets = root / "assets.json"
    limits = {"nox_limit_mg_m3": 1.0, "co_limit_mg_m3": 1.0, "alerte_fraction": 0.8}
    assets.write_text(json.dumps({"turbine-nox": {OVER_PERMIT: limits}}))
    webhook = HttpReceiver().start()
    smtp = SmtpSink(port=free_port()).start()
    running = fleet_env(
        root, fleet_models,
        VIGIE_DATA_DIR=str(fleet_models.parent / "data"),
        VIGIE_ASSET_CONFIG=str(assets),
        VIGIE_FLEET_CLIENT_RATE=str(CLIENT_RATE),
        VIGIE_FLEET_CLIENT_BURST=str(CLIENT_BURST),
        VIGIE_FLEET_MAX_BODY=MAX_BODY,
        VIGIE_SMTP_PORT=str(smtp.port),
        VIGIE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        VIGIE_RETRY_BASE_S="0.2",
        VIGIE_DELIVERY_POLL_S="0.05",
        VIGIE_PUBLIC_URL="https://alerting.e2e.test",
        VIGIE_WORKERS="1",  # 13 gunicorn processes on 2 cores is plenty for these tests
        VIGIE_ACCESS_LOG="true",  # the services' own request lines too (fleet run: the gateway's)
    )  # fmt: skip
    running.extra.update(webhook=webhook, smtp=smtp)
    try:
        yield running.start()
    finally:
        running.kill()
        webhook.stop()
        smtp.stop()
