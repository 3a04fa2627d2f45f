"""Reading a piece's OpenAPI document: response schemas and validating answers against them."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:vigie:openapi"
METHODS = ("get", "post", "put", "patch", "delete")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    op = spec["paths"][path][method]
    response = op["responses"][str(status)]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def validate(spec: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """Why ``instance`` does not match ``schema`` (refs resolved in ``spec``); [] when it does."""
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource(contents=spec, specification=DRAFT202012)
    )
    rooted = _rooted(schema)
    validator = Draft202012Validator(rooted, registry=registry)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def _rooted(schema: Any) -> Any:
    """``schema`` with its ``#/...`` references pointing into the spec's resource."""
    if isinstance(schema, dict):
        return {
            k: (SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else
                _rooted(v))
            for k, v in schema.items()
        }  # fmt: skip
    if isinstance(schema, list):
        return [_rooted(v) for v in schema]
    return schema
