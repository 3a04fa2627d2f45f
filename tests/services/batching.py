"""What a service's ``predict_batch`` (micro-batching) must give: per call, what ``predict``
gives that call alone, or the exception it raises."""

from __future__ import annotations

import dataclasses
from typing import Any

from vigie.contract.service import PredictionService, Scored

# ONNX Runtime computes a float64 Sigmoid vectorised over several rows and scalar for one, so a
# probability (gradient boosting, and a soft vote with it) may differ in its last bit between
# a call of one row and the same row within more rows; predict itself already varies so with
# the size of a request. Everything else (levels, classes, rounded values, messages) is equal.
LAST_BIT = 1e-15


def same(got: Any, expected: Any, where: str = "") -> None:
    """``got == expected``, but floats may differ by :data:`LAST_BIT`."""
    if isinstance(expected, float) and isinstance(got, float):
        assert abs(got - expected) <= LAST_BIT, (where, got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), (where, got, expected)
        for key, value in expected.items():
            same(got[key], value, f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert type(got) is type(expected) and len(got) == len(expected), (where, got)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            same(g, e, f"{where}[{i}]")
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        assert type(got) is type(expected), (where, got, expected)
        for f in dataclasses.fields(expected):
            same(getattr(got, f.name), getattr(expected, f.name), f"{where}.{f.name}")
    else:
        assert got == expected, (where, got, expected)


def assert_batch_equals_predict(
    service: PredictionService[Any], calls: list[tuple[str, list[Any]]]
) -> list[list[Scored] | Exception]:
    """``predict_batch(calls)`` is, slot by slot, what ``predict`` gives (or raises) per call."""
    batched = service.predict_batch(calls)
    assert len(batched) == len(calls)
    for i, ((asset_id, measurements), got) in enumerate(zip(calls, batched, strict=True)):
        try:
            expected = service.predict(asset_id, measurements)
        except Exception as exc:
            assert type(got) is type(exc), (i, got, exc)
            assert str(got) == str(exc)
            assert getattr(got, "details", None) == getattr(exc, "details", None)
        else:
            same(got, expected, f"call {i}")
    return batched
