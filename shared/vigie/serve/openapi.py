"""OpenAPI for the routes that read their body themselves (the hot predict route)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


def document_body(app: FastAPI, path: str, model: type[BaseModel]) -> None:
    """Declare ``model`` as the JSON body of ``POST path`` in ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = app.openapi_schema
        if spec is None:
            spec = build()  # and cached by FastAPI, with what we add below
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            spec["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}},
            }
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
