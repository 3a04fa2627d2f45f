"""A turbine-nox service under gunicorn (2 workers) with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``turbine_nox/train.csv``
(4 "years", the last one drifted), so these tests need neither the real data nor a prepared model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.serving import Served, serve, train_synthetic

SERVICE = "turbine-nox"
CONFIGURED = "GT-LOW"  # an asset with its own, low limits
CONFIGURED_LIMITS = {"nox_limit_mg_m3": 40.0, "co_limit_mg_m3": 80.0, "alerte_fraction": 0.8}


Env = Served


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a turbine-nox model trained on synthetic data."""
    return train_synthetic(
        tmp_path_factory.mktemp("nox-trained"),
        SERVICE,
        lambda d: write_turbine_data(d, rows_per_year=500),
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("nox-served")
    with serve(
        SERVICE, root, trained_models, sub="plant", asset_config={CONFIGURED: CONFIGURED_LIMITS}
    ) as running:
        yield running
