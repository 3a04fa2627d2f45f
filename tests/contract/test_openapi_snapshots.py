"""The committed OpenAPI of each piece is the contract: a breaking change fails (unless the
snapshot changes in the same commit), and so does a snapshot left behind by the code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.contract.snapshots import FOLDER, documents, render
from vigie.contract.openapi_diff import breaking_changes


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    return documents()


def committed(name: str) -> dict[str, Any]:
    path = FOLDER / f"{name}.json"
    assert path.exists(), f"no snapshot {path}: run `make openapi` and commit it"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_every_piece_has_a_snapshot_and_no_other(generated: dict[str, dict[str, Any]]) -> None:
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == sorted(generated)


def test_no_breaking_change_against_the_snapshots(generated: dict[str, dict[str, Any]]) -> None:
    problems = {
        name: breaking_changes(committed(name), document) for name, document in generated.items()
    }
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


def test_the_snapshots_are_up_to_date(generated: dict[str, dict[str, Any]]) -> None:
    stale = [n for n, d in generated.items() if render(d) != render(committed(n))]
    assert not stale, f"OpenAPI changed for {stale}: run `make openapi` and commit the snapshots"
