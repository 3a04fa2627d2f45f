"""A solar-flare service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``daily_train.csv`` (see
:mod:`.synthetic`), so these tests need neither the real data set nor a model prepared
beforehand. The simulation is deterministic: tests rebuild it with :func:`simulation` to get the
raw material behind every row of the training file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.solar_flare.synthetic import Simulation, simulate, write_solar_data
from tests.support.servers import RedisServer
from tests.support.serving import Served, make_served, serve, train_synthetic

SERVICE = "solar-flare"
MAX_BATCH = 200
DAYS = 700
SEED = 3


@functools.cache
def simulation() -> Simulation:
    return simulate(DAYS, seed=SEED)


Env = Served


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a solar-flare model trained on synthetic data."""
    return train_synthetic(
        tmp_path_factory.mktemp("solar-trained"),
        SERVICE,
        lambda d: write_solar_data(d, simulation()),
    )


def make_env(root: Path, models: Path, redis: RedisServer) -> Env:
    return make_served(SERVICE, root, models, redis, sub="desk", max_batch=MAX_BATCH)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_models: Path) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("solar-served")
    with serve(SERVICE, root, trained_models, sub="desk", max_batch=MAX_BATCH) as running:
        yield running
