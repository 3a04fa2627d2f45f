"""Every service: an OpenAPI document clients can generate code from, and answers that match
it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import Contract
from tests.contract.spec import operations, response_schema, validate

pytestmark = pytest.mark.integration

PREDICT_ERRORS = {"400", "401", "403", "409", "413", "422", "503"}


def spec_of(c: Contract) -> dict[str, Any]:
    with c.served.client() as client:
        spec: dict[str, Any] = client.get("/openapi.json").json()
    return spec


def test_every_operation_declares_its_json_answer(contract: Contract) -> None:
    spec = spec_of(contract)
    for path, method, _op in operations(spec):
        schema = response_schema(spec, path, method, 200)
        assert schema != {"type": "string"} and schema, (path, method, schema)
        assert "$ref" in schema or "properties" in schema or "additionalProperties" in schema, (
            path, method, schema,
        )  # fmt: skip


def test_error_answers_are_declared_with_the_envelope(contract: Contract) -> None:
    spec = spec_of(contract)
    ops = {(p, m): op for p, m, op in operations(spec)}
    predict = ops[("/v1/predict", "post")]
    assert set(predict["responses"]) >= PREDICT_ERRORS, predict["responses"].keys()
    for (path, method), op in ops.items():
        if path not in ("/healthz", "/readyz", "/openapi.json"):
            assert {"401", "403"} <= set(op["responses"]), (path, method)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, status)


def test_measurement_fields_are_documented_with_units(contract: Contract) -> None:
    spec = spec_of(contract)
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    name = body["schema"]["$ref"].rsplit("/", 1)[1]
    batch = spec["components"]["schemas"][name]
    item = batch["properties"]["measurements"]["items"]["$ref"].rsplit("/", 1)[1]
    fields = spec["components"]["schemas"][item]["properties"]
    undocumented = [f for f, schema in fields.items() if not schema.get("description")]
    assert not undocumented, undocumented


def test_real_answers_match_their_declared_schemas(contract: Contract) -> None:
    spec = spec_of(contract)
    body = contract.body(rows=2)
    headers = contract.served.headers()
    with contract.served.client() as client:
        answers = {
            ("/v1/predict", "post", 200): client.post("/v1/predict", json=body, headers=headers),
            ("/v1/predict", "post", 422): client.post(
                "/v1/predict", json={"asset_id": "x"}, headers=headers
            ),
            ("/v1/predict", "post", 401): client.post("/v1/predict", json=body),
            ("/v1/model", "get", 200): client.get("/v1/model", headers=headers),
            ("/v1/predictions", "get", 200): client.get(
                "/v1/predictions", params={"asset_id": body["asset_id"]}, headers=headers
            ),
            ("/healthz", "get", 200): client.get("/healthz"),
            ("/readyz", "get", 200): client.get("/readyz"),
        }
    for (path, method, status), answer in answers.items():
        assert answer.status_code == status, (path, answer.text)
        problems = validate(spec, response_schema(spec, path, method, status), answer.json())
        assert not problems, (path, status, problems[:5])
