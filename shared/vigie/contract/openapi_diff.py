"""Breaking changes between two OpenAPI documents of a piece: what would break a client
generated from the older one. The committed snapshots (``tests/contract/openapi/``) are the
contract; a change that breaks it must change the snapshot in the same commit.

Breaking, for a client: an operation gone; a response field gone or its type narrowed; a
request that was valid no longer being valid (a new required field, a field no longer accepted,
a value range, length or set of choices narrowed, a type narrowed).
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` breaks a client of ``old``, one line each (empty: compatible)."""
    problems: list[str] = []
    for path, item in old.get("paths", {}).items():
        for method in METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            new_op = new.get("paths", {}).get(path, {}).get(method)
            if new_op is None:
                problems.append(f"{where}: operation removed")
                continue
            _operation(where, item[method], new_op, old, new, problems)
    return problems


def _operation(
    where: str,
    old_op: dict[str, Any],
    new_op: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    out: list[str],
) -> None:
    for status, response in old_op.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        new_response = new_op.get("responses", {}).get(status)
        if new_response is None:
            out.append(f"{where}: response {status} removed")
            continue
        _Compare(old, new, out, request=False).schema(
            f"{where} {status}", _json_schema(response), _json_schema(new_response)
        )
    old_params = {(p["in"], p["name"]): p for p in old_op.get("parameters", [])}
    for param in new_op.get("parameters", []):
        key = (param["in"], param["name"])
        if key not in old_params and param.get("required"):
            out.append(f"{where}: new required parameter {param['name']}")
        elif key in old_params:
            _Compare(old, new, out, request=True).schema(
                f"{where} parameter {param['name']}",
                old_params[key].get("schema", {}),
                param.get("schema", {}),
            )
    old_body, new_body = old_op.get("requestBody"), new_op.get("requestBody")
    if old_body is None and new_body is not None and new_body.get("required"):
        out.append(f"{where}: a request body is now required")
    elif old_body is not None and new_body is not None:
        _Compare(old, new, out, request=True).schema(
            f"{where} body", _json_schema(old_body), _json_schema(new_body)
        )


def _json_schema(part: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = part.get("content", {}).get("application/json", {}).get("schema", {})
    return schema


class _Compare:
    """Walks an old and a new schema side by side (``request``: what a client sends)."""

    def __init__(
        self, old: dict[str, Any], new: dict[str, Any], out: list[str], *, request: bool
    ) -> None:
        self.docs = (old, new)
        self.out = out
        self.request = request
        self.seen: set[tuple[str, str]] = set()

    def resolve(self, schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def schema(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = (repr(old.get("$ref", id(old))), repr(new.get("$ref", id(new))))
        if key in self.seen:  # recursive schemas
            return
        self.seen.add(key)
        old, new = self.resolve(old, self.docs[0]), self.resolve(new, self.docs[1])
        old_types, new_types = _types(old), _types(new)
        if old_types and new_types and not old_types <= new_types:
            lost = sorted(old_types - new_types)
            self.out.append(f"{where}: type narrowed (no longer {', '.join(lost)})")
        if self.request:
            self._request_limits(where, old, new)
        else:
            self._response_fields(where, old, new)
        for name, old_prop in old.get("properties", {}).items():
            new_prop = new.get("properties", {}).get(name)
            if new_prop is not None:
                self.schema(f"{where}.{name}", old_prop, new_prop)
        if "items" in old and "items" in new:
            self.schema(f"{where}[]", old["items"], new["items"])
        for branch in ("anyOf", "oneOf"):
            for old_b, new_b in zip(old.get(branch, []), new.get(branch, []), strict=False):
                self.schema(where, old_b, new_b)

    def _response_fields(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        new_props = new.get("properties", {})
        for name in old.get("properties", {}):
            if name not in new_props and not new.get("additionalProperties"):
                self.out.append(f"{where}: response field {name} removed")
        old_required = set(old.get("required", []))
        for name in old_required - set(new.get("required", [])):
            if name in new_props:
                self.out.append(f"{where}: response field {name} no longer always present")

    def _request_limits(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        for name in set(new.get("required", [])) - set(old.get("required", [])):
            self.out.append(f"{where}: new required field {name}")
        if new.get("additionalProperties") is False:
            for name in old.get("properties", {}):
                if name not in new.get("properties", {}):
                    self.out.append(f"{where}: field {name} no longer accepted")
        for bound in _UPPER:
            if bound in new and (bound not in old or new[bound] < old[bound]):
                self.out.append(f"{where}: {bound} lowered to {new[bound]}")
        for bound in _LOWER:
            if bound in new and (bound not in old or new[bound] > old[bound]):
                self.out.append(f"{where}: {bound} raised to {new[bound]}")
        if "enum" in new and not set(map(repr, old.get("enum", ["*"]))) <= set(
            map(repr, new["enum"])
        ):
            self.out.append(f"{where}: choices narrowed to {new['enum']}")
        if "pattern" in new and new.get("pattern") != old.get("pattern"):
            self.out.append(f"{where}: pattern changed to {new['pattern']}")


def _types(schema: dict[str, Any]) -> set[str]:
    if "type" in schema:
        t = schema["type"]
        return set(t) if isinstance(t, list) else {t}
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        found: set[str] = set()
        for b in branches:
            found |= _types(b) or {"<ref>"}
        return found
    return set()
