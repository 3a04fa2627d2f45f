"""Fixtures of the modules of this folder that run one check over every prediction service
(``test_*_common.py``, ``test_serving_imports.py``); each service's folder keeps its domain tests.

The services and their synthetic training data are the contract suite's
(:data:`tests.contract.cases.CASES`, the toy service left out): the same data as each service's
conftest trains on, so within a session :func:`~tests.support.serving.train_synthetic` trains
each service once for all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.cases import CASES, Case
from tests.support.serving import train_synthetic

PREDICTION_CASES = tuple(c for c in CASES if c.app_spec is None)


@pytest.fixture(scope="session", params=PREDICTION_CASES, ids=[c.service for c in PREDICTION_CASES])
def prediction_case(request: pytest.FixtureRequest) -> Case:
    """Each prediction service of the registry in turn."""
    case: Case = request.param
    return case


@pytest.fixture(scope="session")
def case_models(prediction_case: Case, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models dir of ``prediction_case`` trained by ``vigie train`` on its synthetic data,
    which lies beside it (``case_models.parent / "data"``)."""
    root = tmp_path_factory.mktemp(f"{prediction_case.service}-common")
    return train_synthetic(root, prediction_case.service, prediction_case.write_data)
