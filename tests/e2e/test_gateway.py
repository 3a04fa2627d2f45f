"""The nginx gateway of a running fleet: routing, TLS, limits, headers, request ids, /metrics."""

from __future__ import annotations

import json
import re
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import CLIENT_BURST, MAX_BODY
from tests.support.fleet import Fleet
from tests.support.servers import wait_until
from vigie.ops.fleet import PREDICTION_PIECES

pytestmark = pytest.mark.integration

ENVELOPE_KEYS = {"code", "message", "details"}


def error_of(r: httpx.Response) -> dict:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ENVELOPE_KEYS, body
    return dict(body["error"])


@pytest.mark.parametrize("piece", ["auth", "alerting", *PREDICTION_PIECES])
def test_each_prefix_reaches_its_piece_with_the_prefix_stripped(fleet: Fleet, piece: str) -> None:
    with fleet.client() as c:
        r = c.get(f"/{piece}/readyz")
        assert r.status_code == 200, r.text
        title = c.get(f"/{piece}/openapi.json").json()["info"]["title"]
    expected = {"auth": "auth", "alerting": "alert"}.get(piece, piece.split("-")[0])
    assert expected in title.lower(), title


def test_a_prediction_service_answers_with_a_token_from_auth(fleet: Fleet) -> None:
    token = fleet.token("predict:turbine-nox")
    with fleet.client() as c:
        r = c.get("/turbine-nox/v1/model", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["service"] == "turbine-nox"


def test_401_from_the_service_passes_through_in_its_envelope(fleet: Fleet) -> None:
    with fleet.client() as c:
        r = c.post("/turbine-nox/v1/predict", json={"asset_id": "GT1", "measurements": []})
    assert r.status_code == 401
    assert error_of(r)["code"] == "unauthorized"
    assert "www-authenticate" in r.headers


def test_unknown_routes_are_404_in_the_envelope(fleet: Fleet) -> None:
    with fleet.client() as c:
        for path in ("/", "/nope", "/nope/v1/predict", "/turbine-nox-v2/v1/model"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert error_of(r)["code"] == "not_found", path
        # A bare prefix is sent to the prefix with its slash (relative, whatever the host).
        r = c.get("/turbine-nox")
        assert r.status_code == 301 and r.headers["location"] == "/turbine-nox/"


@pytest.mark.parametrize(
    "path",
    [
        "/{piece}/metrics",
        "/{piece}/metrics/",
        "/{piece}//metrics",
        "/{piece}/./metrics",
        "/{piece}/v1/../metrics",
        "/{piece}/%6Detrics",
        "/{piece}/metrics?x=1",
    ],
)
def test_metrics_are_not_reachable_through_the_gateway(fleet: Fleet, path: str) -> None:
    with fleet.client() as c:
        for piece in ("auth", "alerting", *PREDICTION_PIECES):
            r = c.get(path.format(piece=piece))
            assert r.status_code == 404, (piece, path, r.text[:200])
            assert "vigie_http_requests_total" not in r.text
    # ... while each piece does export them on its own port, for Prometheus.
    direct = httpx.get(f"http://127.0.0.1:{fleet.ports['turbine-nox']}/metrics", timeout=10)
    assert direct.status_code == 200 and "vigie_" in direct.text


def test_body_over_the_cap_is_413_in_the_envelope(fleet: Fleet) -> None:
    cap = int(MAX_BODY.rstrip("k")) * 1024
    token = fleet.token("predict:gamma-classifier")
    with fleet.client() as c:
        r = c.post(
            "/gamma-classifier/v1/predict",
            content=b'{"asset_id": "M1", "measurements": [' + b" " * cap + b"]}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert r.status_code == 413
    err = error_of(r)
    assert err["code"] == "payload_too_large" and MAX_BODY in err["message"]


def test_a_burst_from_one_client_meets_429_with_retry_after(fleet: Fleet) -> None:
    token = fleet.token("predict:solar-flare")
    headers = {"Authorization": f"Bearer {token}"}
    with fleet.client() as c, ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: c.get("/solar-flare/v1/model", headers=headers), range(6 * CLIENT_BURST)
            )
        )
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert {r.status_code for r in codes} <= {200, 429}
    assert sum(r.status_code == 200 for r in codes) >= CLIENT_BURST  # the burst itself passes
    err = error_of(limited[0])
    assert err["code"] == "too_many_requests" and err["details"] == [{"retry_after_s": 1}]
    assert limited[0].headers["retry-after"] == "1"
    # Another client (another token) is not held back by the first one's burst.
    other = fleet.token("predict:solar-flare")
    with fleet.client() as c:
        assert (
            c.get("/solar-flare/v1/model", headers={"Authorization": f"Bearer {other}"}).status_code
            == 200
        )
    # ... and the first one is served again once it keeps to the rate.
    time.sleep(2)
    with fleet.client() as c:
        assert c.get("/solar-flare/v1/model", headers=headers).status_code == 200


def test_security_headers_and_no_version_disclosed(fleet: Fleet) -> None:
    with fleet.client() as c:
        r = c.get("/solar-flare/healthz")
    assert r.status_code == 200
    assert r.headers["server"] == "nginx"  # server_tokens off: no version
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["strict-transport-security"].startswith("max-age=")
    plain = httpx.get(fleet.http_url + "/solar-flare/healthz", timeout=10)
    assert plain.status_code == 200 and "strict-transport-security" not in plain.headers


def _handshake(fleet: Fleet, version: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=str(fleet.cert))
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = version
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer old protocols; the server decides
    with httpx.Client(verify=ctx, timeout=10) as c:
        c.get(fleet.https_url + "/healthz")
        return "ok"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_2_and_1_3_only(fleet: Fleet) -> None:
    assert _handshake(fleet, ssl.TLSVersion.TLSv1_3) == "ok"
    assert _handshake(fleet, ssl.TLSVersion.TLSv1_2) == "ok"
    # This client can speak TLS 1.1 (it is only deprecated): the refusal is the gateway's.
    with pytest.raises(httpx.ConnectError, match=r"(?i)protocol.version|unsupported.protocol"):
        _handshake(fleet, ssl.TLSVersion.TLSv1_1)


def _access_lines(fleet: Fleet) -> list[dict]:
    path = fleet.var / "nginx" / "logs" / "access.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _service_log_lines(fleet: Fleet, service: str) -> list[dict]:
    """The JSON lines a service wrote (honcho prefixes each with time and process name)."""
    out = []
    for line in fleet.log().splitlines():
        head, sep, rest = line.partition("| ")
        if sep and service in head and rest.startswith("{"):
            try:
                out.append(json.loads(rest))
            except json.JSONDecodeError:
                continue
    return out


def test_request_id_is_passed_on_logged_and_stored(fleet: Fleet) -> None:
    token = fleet.token("predict:turbine-nox")
    with fleet.client() as c:
        r = c.get(
            "/turbine-nox/v1/model",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-trace-0001"},
        )
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "e2e-trace-0001"
        bad = c.get("/turbine-nox/healthz", headers={"X-Request-ID": "spaces are not ok"})
        made = c.get("/turbine-nox/healthz")
    for generated in (bad.headers["x-request-id"], made.headers["x-request-id"]):
        assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert bad.headers["x-request-id"] != made.headers["x-request-id"]

    gateway = wait_until(
        lambda: [x for x in _access_lines(fleet) if x["request_id"] == "e2e-trace-0001"],
        what="the gateway's access line",
    )
    assert gateway[0]["uri"] == "/turbine-nox/v1/model" and gateway[0]["status"] == 200
    assert gateway[0]["tls"].startswith("TLSv1.")
    service = wait_until(
        lambda: [x for x in _service_log_lines(fleet, "turbine-nox")
                 if x.get("request_id") == "e2e-trace-0001"],
        what="the service's JSON access line",
    )  # fmt: skip
    assert service[0]["path"] == "/v1/model" and service[0]["status"] == 200
