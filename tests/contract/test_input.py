"""Every service: bad input is a clear 4xx naming the field, never a 5xx."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from tests.contract.conftest import MAX_BATCH, Contract
from tests.contract.test_auth import observation

pytestmark = pytest.mark.integration


def float_path(c: Contract) -> tuple[str, ...]:
    """The path of a float field that a valid measurement of the service carries (nested
    models included, e.g. ``summary.sunspot_number``)."""
    found = _float_in(c.case.service_class().Measurement, c.body()["measurements"][-1])
    assert found, f"{c.name}: no float field in a valid measurement"
    return found


def _float_in(model: type[BaseModel], values: dict[str, Any]) -> tuple[str, ...]:
    """Required fields first: a null there must be refused."""
    fields = sorted(model.model_fields.items(), key=lambda f: not f[1].is_required())
    for name, info in fields:
        if name not in values or values[name] is None:
            continue
        kinds = [info.annotation, *get_args(info.annotation)]
        if float in kinds and isinstance(values[name], float | int):
            return (name,)
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                inner = values[name]
                if isinstance(inner, dict) and (deeper := _float_in(kind, inner)):
                    return (name, *deeper)
    return ()


def _required(model: type[BaseModel], path: tuple[str, ...]) -> bool:
    """Whether every field along ``path`` is required (a null must then be refused)."""
    for name in path:
        info = model.model_fields[name]
        if not info.is_required():
            return False
        inner = [k for k in (info.annotation, *get_args(info.annotation))
                 if isinstance(k, type) and issubclass(k, BaseModel)]  # fmt: skip
        model = inner[0] if inner else model
    return True


def put(measurement: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        measurement = measurement[key]
    measurement[path[-1]] = value


def bad_bodies(c: Contract) -> list[tuple[str, Any, str]]:
    """(what, body, field path the answer must name)."""
    good = c.body()
    path = float_path(c)
    number = ".".join(path)
    required = _required(c.case.service_class().Measurement, path)

    def changed(change: Any) -> dict[str, Any]:
        body = copy.deepcopy(good)
        change(body)
        return body

    last = len(good["measurements"]) - 1
    return [
        ("unknown field", changed(lambda b: b.update(extra=1)), "body.extra"),
        ("unknown measurement field", changed(lambda b: b["measurements"][last].update(bogus=1)),
         f"body.measurements.{last}.bogus"),
        ("no asset", changed(lambda b: b.pop("asset_id")), "body.asset_id"),
        ("bad asset id", changed(lambda b: b.update(asset_id="no spaces!")), "body.asset_id"),
        ("too long asset id", changed(lambda b: b.update(asset_id="A" * 65)), "body.asset_id"),
        ("no measurements", changed(lambda b: b.update(measurements=[])), "body.measurements"),
        ("over the batch limit",
         changed(lambda b: b.update(measurements=b["measurements"][:1] * (MAX_BATCH + 1))),
         "body.measurements"),
        ("naive timestamp",
         changed(lambda b: b["measurements"][last].update(timestamp="2020-01-01T00:00:00")),
         f"body.measurements.{last}.timestamp"),
        ("text for a number",
         changed(lambda b: put(b["measurements"][last], path, "abc")),
         f"body.measurements.{last}.{number}"),
        *([("null for a number",
            changed(lambda b: put(b["measurements"][last], path, None)),
            f"body.measurements.{last}.{number}")] if required else []),
        ("infinite number", changed(lambda b: put(b["measurements"][last], path, 1e999)),
         f"body.measurements.{last}.{number}"),
        ("huge number", changed(lambda b: put(b["measurements"][last], path, 1e300)),
         f"body.measurements.{last}"),
    ]  # fmt: skip


def test_bad_bodies_are_422_naming_the_field(contract: Contract) -> None:
    with contract.served.client() as client:
        for what, body, field in bad_bodies(contract):
            raw = json.dumps(body).replace("Infinity", "1e999")
            r = client.post("/v1/predict", content=raw, headers=contract.served.headers())
            assert r.status_code == 422, (what, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "validation_error", what
            fields = [d.get("field", "") for d in error["details"]]
            assert any(f.startswith(field) for f in fields), (what, fields)


def test_nan_and_malformed_json_are_400_or_422(contract: Contract) -> None:
    good = json.dumps(contract.body())
    number = float_path(contract)[-1]
    nan = re.sub(rf'"{number}": [^,}}\]]+', f'"{number}": NaN', good, count=1)
    assert nan != good
    with contract.served.client() as client:
        headers = contract.served.headers()
        r = client.post("/v1/predict", content=nan, headers=headers)
        assert r.status_code in (400, 422), r.text
        for broken in (good[:-3], "", "[]", "null", '{"asset_id": '):
            r = client.post("/v1/predict", content=broken, headers=headers)
            assert r.status_code in (400, 422), (broken, r.text)
            assert r.json()["error"]["code"] in ("malformed_json", "validation_error")


def test_a_body_over_the_size_limit_is_413(contract: Contract) -> None:
    with contract.served.client() as client:
        r = client.post(
            "/v1/predict",
            content=b"{" + b" " * (9 * 1024 * 1024) + b"}",
            headers=contract.served.headers(**{"Content-Type": "application/json"}),
        )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_bad_feedback_is_422_naming_the_observation(contract: Contract) -> None:
    asset = contract.body()["asset_id"]
    good = observation(contract)
    target = contract.case.service_class().target
    bad_value = 1e12 if target.allowed is None else 0.5
    cases = [
        ({"asset_id": asset, "observations": []}, "body.observations"),
        ({"asset_id": asset, "observations": [{**good, "target": "nope"}]},
         "body.observations.0.target"),
        ({"asset_id": asset, "observations": [{**good, "value": bad_value}]},
         "body.observations.0.value"),
        ({"asset_id": asset, "observations": [{**good, "extra": 1}]},
         "body.observations.0.extra"),
    ]  # fmt: skip
    with contract.served.client() as client:
        for body, field in cases:
            r = client.post("/v1/feedback", json=body, headers=contract.served.headers())
            assert r.status_code == 422, (body, r.text)
            fields = [d["field"] for d in r.json()["error"]["details"]]
            assert field in fields, (field, fields)


def test_out_of_range_query_values_are_422(contract: Contract) -> None:
    asset = contract.body()["asset_id"]
    with contract.served.client() as client:
        headers = contract.served.headers()
        for query in (
            {"asset_id": asset, "cursor": str(2**64)},
            {"asset_id": asset, "limit": "0"},
            {"asset_id": asset, "start": "yesterday"},
            {"asset_id": "bad id!"},
            {},
        ):
            r = client.get("/v1/predictions", params=query, headers=headers)
            assert r.status_code == 422, (query, r.text)


def test_no_5xx_after_all_of_the_above(contract: Contract) -> None:
    with contract.served.client() as client:
        text = client.get("/metrics").text
    assert not re.search(r'vigie_http_requests_total\{[^}]*status="5\d\d"', text), text
