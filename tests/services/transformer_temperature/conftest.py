"""A transformer-temperature service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on synthetic ETT-shaped CSVs, so these
tests need neither the real data set nor a model prepared beforehand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RedisServer
from tests.support.serving import Served, make_served, serve, train_synthetic, vigie
from tests.support.synthetic import write_transformer_data

SERVICE = "transformer-temperature"
MAX_BATCH = 300

Env = Served
__all__ = ["MAX_BATCH", "SERVICE", "Env", "make_env", "vigie"]


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a transformer-temperature model trained on synthetic data."""
    return train_synthetic(
        tmp_path_factory.mktemp("trained"), SERVICE, lambda d: write_transformer_data(d, hours=900)
    )


def make_env(root: Path, models: Path, redis: RedisServer) -> Env:
    return make_served(SERVICE, root, models, redis, sub="scada", max_batch=MAX_BATCH)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    with serve(
        SERVICE, tmp_path_factory.mktemp("served"), trained_models, sub="scada", max_batch=MAX_BATCH
    ) as running:
        yield running
