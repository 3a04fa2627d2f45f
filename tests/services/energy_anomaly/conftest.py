"""An energy-anomaly service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic CSV in the format of
``gas_regional_daily_train.csv`` (3 series, 2 years), so no real data or prepared model is needed.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import pytest

from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.support.serving import Served, served_fixture, trained_models_fixture
from vigie.models.store import ModelStore

SERVICE = "energy-anomaly"
MAX_BATCH = 400


Env = Served

trained_models = trained_models_fixture(SERVICE, write_gas_data)
served = served_fixture(SERVICE, sub="analyst", max_batch=MAX_BATCH)


@pytest.fixture(scope="session")
def energy_model(trained_models: Path):  # type: ignore[no-untyped-def]
    """The trained model object, loaded as the service loads it."""
    store = ModelStore(trained_models)
    version = store.current_version(SERVICE)
    return joblib.load(store.service_dir(SERVICE) / version / "model.joblib")
