"""The error envelope and request metrics, on a tiny real FastAPI app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from vigie.contract.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MalformedJSON,
    MethodNotAllowed,
    ModelUnavailable,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    VigieError,
    field_error,
    install_error_handlers,
)
from vigie.obs.metrics import ServiceMetrics, install_metrics

SECRET = "db password is hunter2"


class Item(BaseModel):
    x: int
    name: str


ERRORS: dict[str, VigieError] = {
    "bad_request": BadRequest("bad"),
    "malformed_json": MalformedJSON("not json"),
    "unauthorized": Unauthorized("token expired"),
    "forbidden": Forbidden("needs scope", scope="predict:svc"),
    "not_found": NotFound("no such asset"),
    "method_not_allowed": MethodNotAllowed("nope"),
    "conflict": Conflict("busy", headers={"Retry-After": "1"}),
    "payload_too_large": PayloadTooLarge("too big"),
    "unprocessable": Unprocessable(
        "bad field", details=[field_error(("body", "x"), "too small", "value_error")]
    ),
    "too_many_requests": TooManyRequests("slow down", headers={"Retry-After": "30"}),
    "service_unavailable": ServiceUnavailable("redis down"),
    "model_unavailable": ModelUnavailable("no model"),
}

EXPECTED = {
    "bad_request": (400, "bad_request"),
    "malformed_json": (400, "malformed_json"),
    "unauthorized": (401, "unauthorized"),
    "forbidden": (403, "insufficient_scope"),
    "not_found": (404, "not_found"),
    "method_not_allowed": (405, "method_not_allowed"),
    "conflict": (409, "conflict"),
    "payload_too_large": (413, "payload_too_large"),
    "unprocessable": (422, "validation_error"),
    "too_many_requests": (429, "too_many_requests"),
    "service_unavailable": (503, "service_unavailable"),
    "model_unavailable": (503, "model_unavailable"),
}


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_metrics(app, "svc")

    @app.post("/items")
    def create(item: Item) -> dict[str, int]:
        return {"x": item.x}

    @app.get("/items/{item_id}")
    def read(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/raise/{name}")
    def raise_named(name: str) -> None:
        raise ERRORS[name]

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def envelope(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return body["error"]  # type: ignore[no-any-return]


def test_success_is_untouched(client: TestClient) -> None:
    response = client.post("/items", json={"x": 3, "name": "a"})
    assert response.status_code == 200
    assert response.json() == {"x": 3}


def test_validation_error_is_a_422_envelope_with_field_paths(client: TestClient) -> None:
    response = client.post("/items", json={"x": "not a number"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    error = envelope(response)
    assert error["code"] == "validation_error"
    fields = {d["field"]: d for d in error["details"]}  # type: ignore[attr-defined]
    assert set(fields) == {"body.x", "body.name"}
    assert fields["body.x"]["type"] == "int_parsing"
    assert fields["body.name"]["type"] == "missing"
    assert all(d["message"] for d in fields.values())
    # The message names the first field and says how many more there are.
    assert "body." in error["message"]  # type: ignore[operator]
    assert "(and 1 more)" in error["message"]  # type: ignore[operator]


def test_path_parameter_validation_names_the_path_field(client: TestClient) -> None:
    response = client.get("/items/abc")
    assert response.status_code == 422
    [detail] = envelope(response)["details"]  # type: ignore[misc]
    assert detail["field"] == "path.item_id"


def test_malformed_json_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/items", content=b'{"x": 1,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "malformed_json"
    assert "not valid JSON" in error["message"]  # type: ignore[operator]
    assert error["details"][0]["type"] == "json_invalid"  # type: ignore[index]


def test_unknown_route_is_a_404_envelope(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    error = envelope(response)
    assert error["code"] == "not_found"
    assert error["message"] == "no route GET /nowhere"


def test_wrong_method_is_a_405_envelope(client: TestClient) -> None:
    response = client.delete("/items")
    assert response.status_code == 405
    assert envelope(response)["code"] == "method_not_allowed"
    # RFC 9110 15.5.6: a 405 must say which methods the resource supports.
    assert response.headers["allow"] == "POST"


def test_http_exception_headers_are_kept(app: FastAPI, client: TestClient) -> None:
    @app.get("/limited")
    def limited() -> None:
        raise HTTPException(429, "slow down", headers={"Retry-After": "7"})

    response = client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = envelope(response)
    assert error["code"] == "too_many_requests"
    assert error["message"] == "slow down"


def test_unmapped_http_status_keeps_its_code(app: FastAPI, client: TestClient) -> None:
    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418, "short and stout")

    response = client.get("/teapot")
    assert response.status_code == 418
    assert envelope(response)["code"] == "http_418"


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_vigie_error_renders_its_status_code_and_headers(
    client: TestClient, name: str
) -> None:
    err = ERRORS[name]
    status, code = EXPECTED[name]
    assert (err.status, err.code) == (status, code)
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    error = envelope(response)
    assert error["code"] == code
    assert error["message"] == err.message
    assert error["details"] == err.details
    for header, value in err.headers.items():
        assert response.headers[header] == value


def test_auth_errors_carry_their_challenges(client: TestClient) -> None:
    unauthorized = client.get("/raise/unauthorized")
    challenge = unauthorized.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="vigie"')
    assert 'error="invalid_token"' in challenge
    forbidden = client.get("/raise/forbidden")
    assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    assert 'scope="predict:svc"' in forbidden.headers["www-authenticate"]
    assert envelope(forbidden)["details"] == [{"required_scope": "predict:svc"}]
    assert client.get("/raise/conflict").headers["retry-after"] == "1"


def test_unexpected_exception_is_an_opaque_500(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    error = envelope(response)
    assert error["code"] == "internal_error"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


def test_metrics_count_requests_by_route_template_and_status(
    app: FastAPI, client: TestClient
) -> None:
    client.get("/items/1")
    client.get("/items/2")
    client.get("/items/abc")  # 422
    client.post("/items", json={"x": 1, "name": "a"})
    client.get("/nowhere")
    client.get("/elsewhere")
    client.get("/boom")
    client.get("/raise/conflict")

    metrics: ServiceMetrics = app.state.metrics

    def count(method: str, route: str, status: int) -> float | None:
        return metrics.registry.get_sample_value(
            "vigie_http_requests_total",
            {"service": "svc", "method": method, "route": route, "status": str(status)},
        )

    assert count("GET", "/items/{item_id}", 200) == 2
    assert count("GET", "/items/{item_id}", 422) == 1
    assert count("POST", "/items", 200) == 1
    assert count("GET", "<unmatched>", 404) == 2
    assert count("GET", "/boom", 500) == 1
    assert count("GET", "/raise/{name}", 409) == 1
    # Raw paths never become labels (bounded cardinality).
    assert count("GET", "/items/1", 200) is None
    assert count("GET", "/nowhere", 404) is None

    latency = metrics.registry.get_sample_value(
        "vigie_http_request_duration_seconds_count",
        {"service": "svc", "method": "GET", "route": "/items/{item_id}"},
    )
    assert latency == 3

    exposition = client.get("/metrics")
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    assert (
        'vigie_http_requests_total{method="GET",route="/items/{item_id}",service="svc",'
        'status="200"} 2.0'
    ) in text
    assert 'route="<unmatched>"' in text
