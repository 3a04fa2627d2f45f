"""A prediction log on a fresh database (SQLite and PostgreSQL), with its metrics, for the
tests of what it writes and of the feedback matched to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.shared.io.records import SERVICE
from vigie.io.prediction_log import PredictionLog, make_engine
from vigie.obs.metrics import ServiceMetrics


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(SERVICE)


@pytest.fixture
def plog(database_url: str, metrics: ServiceMetrics) -> Iterator[PredictionLog]:
    log = PredictionLog(make_engine(database_url), SERVICE, metrics)
    yield log
    log.close()
