"""What the services' replay tests check of the requests ``replay_requests`` makes from a CSV:
each one is what the service's own schema accepts, as it would arrive over HTTP (JSON)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import pytest

from tests.support.cli import real_data_file
from vigie.contract.replay import ReplayRequest
from vigie.contract.service import PredictionService
from vigie.serve.schemas import ASSET_ID_PATTERN
from vigie.settings import VigieSettings

S = TypeVar("S", bound=PredictionService[Any, Any])


def unbound(service_class: type[S]) -> S:
    """The service with default settings and no model: what ``vigie replay`` reads files with."""
    return service_class(VigieSettings(asset_config=None))


def unbound_fixture(service_class: type[PredictionService[Any, Any]]) -> Any:
    """A test module's fixture ``service``: :func:`unbound` ``service_class``, anew per test.

    ``service = unbound_fixture(MyService)`` in the module."""

    @pytest.fixture(name="service")
    def fixture() -> PredictionService[Any, Any]:
        return unbound(service_class)

    return fixture


def parsed(
    service: PredictionService[Any, Any], request: ReplayRequest, history: int = 0
) -> list[Any]:
    """The request's measurements read by the service's schema from their JSON (no NaN may be
    sent), after checking the asset id and that ``history`` rows come before the new ones."""
    assert re.fullmatch(ASSET_ID_PATTERN, request.asset_id), request.asset_id
    assert len(request.measurements) == history + request.rows, (history, request.rows)
    read = service.Measurement.model_validate_json
    return [read(json.dumps(m, allow_nan=False)) for m in request.measurements]


def real_requests(service: PredictionService[Any, Any], relative: str) -> list[ReplayRequest]:
    """Every request a replay of the real data file ``relative`` sends (the test skips without
    it), in batches of the service's ``replay_batch``."""
    path = real_data_file(relative)
    return list(service.replay_requests(path, None, service.replay_batch))
