"""An energy-anomaly service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic CSV in the format of
``gas_regional_daily_train.csv`` (3 series, 2 years), so no real data or prepared model is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest

from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.support.serving import Served, serve, train_synthetic
from vigie.models.store import ModelStore

SERVICE = "energy-anomaly"
MAX_BATCH = 400


Env = Served


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a energy-anomaly model trained on synthetic data."""
    return train_synthetic(tmp_path_factory.mktemp("energy-trained"), SERVICE, write_gas_data)


@pytest.fixture(scope="session")
def energy_model(trained_models: Path):  # type: ignore[no-untyped-def]
    """The trained model object, loaded as the service loads it."""
    store = ModelStore(trained_models)
    version = store.current_version(SERVICE)
    return joblib.load(store.service_dir(SERVICE) / version / "model.joblib")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("energy-served")
    with serve(SERVICE, root, trained_models, sub="analyst", max_batch=MAX_BATCH) as running:
        yield running
