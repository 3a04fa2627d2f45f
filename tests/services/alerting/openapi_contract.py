"""Check real HTTP answers against a piece's published OpenAPI document.

:class:`Contract` is an httpx response hook: every answer must have a status its operation
declares, and a JSON body valid against that status's schema (``jsonschema``, with the document's
components, times in RFC 3339 with ``Z``). It records what it saw, so a test can also check that
each operation's success was exercised.

Used by the alerting and auth tests (a candidate for ``tests/support``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from jsonschema import Draft202012Validator, FormatChecker

#: answered by the framework for any path, and not part of the documented contract
UNDOCUMENTED_OK = {405}

UTC_TIMES = FormatChecker(formats=())


@UTC_TIMES.checks("date-time", raises=ValueError)
def _utc_rfc3339(value: object) -> bool:
    # What the pieces write: RFC 3339 in UTC with a Z (e.g. 2026-06-01T10:00:00Z).
    if not isinstance(value, str):
        return True  # the type keyword says what else is allowed
    return value.endswith("Z") and datetime.fromisoformat(value).tzinfo is not None


@dataclass
class Contract:
    spec: dict[str, Any]
    seen: set[tuple[str, str, int]] = field(default_factory=set)  # (method, template, status)

    @classmethod
    def of(cls, base_url: str) -> Contract:
        response = httpx.get(f"{base_url}/openapi.json", timeout=10)
        response.raise_for_status()
        return cls(response.json())

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for template, operations in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method in operations:
                return template, operations[method]
        raise AssertionError(f"{method.upper()} {path} is not in the OpenAPI document")

    def check(self, response: httpx.Response) -> None:
        """Fail unless ``response`` is what the document declares for its request."""
        response.read()
        method, path, status = (
            response.request.method.lower(), response.request.url.path, response.status_code
        )  # fmt: skip
        if status in UNDOCUMENTED_OK:
            return
        template, operation = self._operation(method, path)
        where = f"{method.upper()} {path} -> {status}"
        declared = operation["responses"].get(str(status))
        assert declared is not None, (
            f"{where}: status not declared ({sorted(operation['responses'])})"
        )
        self.seen.add((method, template, status))
        content = declared.get("content")
        if content is None:
            assert not response.content, f"{where}: body where none is declared"
            return
        assert response.headers["content-type"].startswith("application/json"), where
        schema = {**content["application/json"]["schema"], "components": self.spec["components"]}
        errors = sorted(
            Draft202012Validator(schema, format_checker=UTC_TIMES).iter_errors(response.json()),
            key=str,
        )
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"

    def hooks(self) -> dict[str, list[Any]]:
        return {"response": [self.check]}

    def unexercised_successes(self) -> list[str]:
        """Operations whose 2xx answer no checked response showed."""
        missing = []
        for template, operations in self.spec["paths"].items():
            for method, operation in operations.items():
                ok = {int(s) for s in operation["responses"] if s.startswith("2")}
                if not any((method, template, s) in self.seen for s in ok):
                    missing.append(f"{method.upper()} {template}")
        return missing
