"""What the services' HTTP tests send to get a 4xx (a field changed, or a raw JSON token such
as ``NaN``) and what they read back: the refusal naming the field, Prometheus samples. A
running service's own answers are :class:`tests.support.serving.Served`'s methods."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

_LITERAL = "__LITERAL__"

Make = Callable[[], bytes | str]
# name -> (make the body, status, field the refusal names: None for malformed JSON), or
# (make, field) for a 422
BadInputs = Mapping[str, tuple[Make, int, str | None] | tuple[Make, str]]


def mutated(body: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> bytes:
    """``body`` (a copy) after ``change(body)``, as JSON."""
    out = copy.deepcopy(body)
    change(out)
    return orjson.dumps(out)


def with_literal(body: dict[str, Any], path: tuple[str | int, ...], literal: str) -> str:
    """``body`` as JSON with the value at ``path`` replaced by the raw token ``literal`` (``NaN``,
    ``Infinity``: what JSON encoders refuse to write)."""
    out = copy.deepcopy(body)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = _LITERAL
    return json.dumps(out).replace(f'"{_LITERAL}"', literal)


@dataclass(frozen=True)
class BadInput:
    """A body a service must refuse with ``status``, naming ``field`` (None: no field, as for
    malformed JSON)."""

    make: Make
    status: int
    field: str | None

    def assert_refused_by(self, served: Any) -> None:
        """``served`` (a :class:`~tests.support.serving.Served`) answers it as it must."""
        assert_refused(served.post_raw(self.make()), self.status, self.field)


def bad_inputs(cases: BadInputs) -> pytest.MarkDecorator:
    """Parametrize a test's argument ``bad`` with a :class:`BadInput` per case, named by its
    key."""
    params = [
        BadInput(*case) if len(case) == 3 else BadInput(case[0], 422, case[1])
        for case in cases.values()
    ]
    return pytest.mark.parametrize("bad", params, ids=list(cases))


def assert_refused(response: httpx.Response, status: int, field: str | None) -> None:
    """A ``status`` answer in the error envelope, with a message and, unless ``field`` is None,
    ``field`` among its details."""
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert err["message"], err
    if field is not None:
        assert field in [d["field"] for d in err["details"]], err


def samples(text: str) -> Iterator[Sample]:
    """Every sample of a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        yield from family.samples


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the first sample ``name`` carrying ``labels`` (0 when there is none: a
    labelled counter appears once counted)."""
    for s in samples(text):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return 0.0
