"""What the services' micro-batching tests hold ``score_calls`` to: slot by slot, what
``score_call`` gives (or raises) for each call alone, all of it, ``explain`` of every row
included; floats may differ by a tolerance (ONNX Runtime computes some functions vectorised over
several rows and scalar for one, which may change a last bit)."""

from __future__ import annotations

import dataclasses
from typing import Any

from vigie.contract.batch import Batch, Scores
from vigie.contract.service import PredictionService
from vigie.serve.scoring import score_call, score_calls


def assert_same(got: Any, expected: Any, tolerance: float, where: str = "") -> None:
    """``got == expected`` (dicts in the same key order, sequences, dataclasses field by field),
    but floats may differ by ``tolerance``."""
    if isinstance(expected, float) and isinstance(got, float):
        assert abs(got - expected) <= tolerance, (where, got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), (where, got, expected)
        for key, value in expected.items():
            assert_same(got[key], value, tolerance, f"{where}.{key}")
    elif isinstance(expected, list | tuple | range):
        assert len(got) == len(expected), (where, got)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same(g, e, tolerance, f"{where}[{i}]")
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        assert type(got) is type(expected), (where, got, expected)
        for f in dataclasses.fields(expected):
            assert_same(
                getattr(got, f.name), getattr(expected, f.name), tolerance, f"{where}.{f.name}"
            )
    else:
        assert got == expected, (where, got, expected)


def scores_data(scores: Scores) -> dict[str, Any]:
    """Everything of a call's :class:`Scores` the runtime reads, ``explain`` of every row
    included."""
    out = {f.name: getattr(scores, f.name) for f in dataclasses.fields(scores)}
    out["explain"] = [dataclasses.asdict(scores.explain(i)) for i in range(len(scores.levels))]
    if scores.points is not None:
        out["points"] = {
            k: v if isinstance(v, str) else list(v) for k, v in vars(scores.points).items()
        }
    if scores.summary is not None:
        out["summary"] = dataclasses.asdict(scores.summary)
    return out


def assert_joint_equals_alone(
    service: PredictionService[Any, Any], batches: list[Batch[Any]], tolerance: float
) -> list[Scores | Exception]:
    """``score_calls(batches)`` is, slot by slot, what ``score_call`` gives (or raises) alone;
    returns what it gave."""
    joint = score_calls(service, batches)
    assert len(joint) == len(batches)
    for i, (b, got) in enumerate(zip(batches, joint, strict=True)):
        try:
            expected = score_call(service, b)
        except Exception as exc:
            assert type(got) is type(exc), (i, got, exc)
            assert str(got) == str(exc)
            assert getattr(got, "details", None) == getattr(exc, "details", None)
        else:
            assert isinstance(got, Scores), (i, got)
            assert_same(scores_data(got), scores_data(expected), tolerance, f"call {i}")
    return joint
