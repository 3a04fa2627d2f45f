"""Each service of :data:`tests.contract.cases.CASES`, trained on synthetic data and running
under gunicorn (2 uvicorn workers) with a real redis-server and real keys; one per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases import CASES, Case, valid_bodies
from tests.support.serving import Served, serve, train_synthetic
from tests.support.toy_service import train as train_toy

MAX_BATCH = 200  # over the 73 hours a transformer forecast needs


@dataclass
class Contract:
    """A running service and what the suite sends it."""

    case: Case
    served: Served
    data_dir: Path
    models: Path

    @property
    def name(self) -> str:
        return self.case.service

    def bodies(self, count: int, rows: int = 1) -> list[dict[str, Any]]:
        return valid_bodies(self.case, self.data_dir, count, rows)

    def body(self, rows: int = 1) -> dict[str, Any]:
        return self.bodies(1, rows)[0]


def trained(case: Case, root: Path) -> Path:
    if case.app_spec is not None:
        return train_toy(root)
    return train_synthetic(root, case.service, case.write_data)


@pytest.fixture(scope="session", params=CASES, ids=[c.service for c in CASES])
def contract(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Contract]:
    case: Case = request.param
    root = tmp_path_factory.mktemp(f"contract-{case.service}")
    models = trained(case, root / "trained")
    with serve(
        case.service, root / "served", models, app_spec=case.app_spec, max_batch=MAX_BATCH
    ) as served:
        yield Contract(case, served, root / "trained" / "data", models)
