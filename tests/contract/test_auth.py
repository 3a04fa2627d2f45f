"""Every service: who may call what (design.md sections 2 and 4)."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Contract

pytestmark = pytest.mark.integration


def protected(c: Contract) -> list[tuple[str, str, dict | None, str]]:
    """(method, path, json body, scope it needs) of every endpoint behind a token."""
    name = c.name
    body = c.body()
    feedback = {"asset_id": body["asset_id"], "observations": [observation(c)]}
    routes = [
        ("POST", "/v1/predict", body, f"predict:{name}"),
        ("POST", "/v1/feedback", feedback, f"feedback:{name}"),
        ("GET", "/v1/model", None, f"predict:{name}"),
        ("GET", f"/v1/predictions?asset_id={body['asset_id']}", None, f"predict:{name}"),
    ]
    service = c.case.service_class()
    routes += [("GET", f"/v1/{r}", None, f"predict:{name}") for r in resource_names(service)]
    return routes


def resource_names(service: type) -> list[str]:
    from vigie.settings import VigieSettings

    return list(service(VigieSettings()).resources())


def observation(c: Contract) -> dict:
    target = c.case.service_class().target
    if target.allowed is not None:
        value = min(target.allowed)
    elif target.bounds is not None:
        value = (target.bounds[0] + target.bounds[1]) / 2
    else:
        value = 1.0
    return {"timestamp": c.body()["measurements"][-1]["timestamp"], "value": value}


def test_no_token_is_401_with_a_bearer_challenge(contract: Contract) -> None:
    with contract.served.client() as client:
        for method, path, body, _scope in protected(contract):
            r = client.request(method, path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer"), path


def test_forged_expired_and_tampered_tokens_are_401(contract: Contract) -> None:
    contract.served.assert_bad_tokens_refused(contract.body())


def test_a_token_without_the_scope_is_403_naming_it(contract: Contract) -> None:
    other = "alerts:read"
    with contract.served.client() as client:
        headers = {"Authorization": f"Bearer {contract.served.token(other)}"}
        for method, path, body, scope in protected(contract):
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 403, (path, r.text)
            error = r.json()["error"]
            assert error["code"] == "insufficient_scope"
            assert error["details"] == [{"required_scope": scope}]


def test_each_scope_opens_its_endpoints(contract: Contract) -> None:
    with contract.served.client() as client:
        for method, path, body, scope in protected(contract):
            headers = {"Authorization": f"Bearer {contract.served.token(scope)}"}
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 200, (path, r.text)


def test_probes_and_metrics_need_no_token(contract: Contract) -> None:
    with contract.served.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["service"] == contract.name
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").status_code == 200
