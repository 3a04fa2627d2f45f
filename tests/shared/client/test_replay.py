"""The replay client (vigie.client.replay) against a real HTTP server on loopback that mimics the
gateway.

``FakeGateway`` is a small ASGI app served by uvicorn in a thread: ``POST /auth/token`` (OAuth2
client credentials, tokens that really expire) and ``POST /<service>/v1/predict`` with the
runtime's idempotency behaviour (a completed key answers again with ``Idempotent-Replayed:
true``; a key still running answers 409 with ``Retry-After``). Tests script the next answers:
429 with ``Retry-After``, 502/503/504, a 401, a 422 in the error envelope, a slow answer (the
client times out) or a dropped connection (the response is cut after the batch was processed).
Nothing here mocks httpx.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn

from tests.services.turbine_nox.synthetic import turbine_frame
from tests.support.servers import free_port
from vigie.client import replay as rp
from vigie.contract.replay import ReplayRequest, replay_windows
from vigie.ops.tls import ensure_dev_certificate

SERVICE = "turbine-nox"
CLIENT_ID, CLIENT_SECRET = "replay-test", "s3cret-value"
FAST = rp.RetryPolicy(max_retries=5, backoff_s=0.01, max_backoff_s=0.05)


# ------------------------------------------------------------------------------ fake gateway


@dataclass
class Call:
    key: str | None
    token: str
    at: float  # time.monotonic() when the request arrived
    fingerprint: str
    client: tuple[str, int]  # the client's address: one per TCP connection
    answer: str = ""


@dataclass
class FakeGateway:
    """See the module docstring. ``script`` holds the next predict answers (then ``ok``)."""

    service: str = SERVICE
    expires_in: float = 3600.0
    script: list[str] = field(default_factory=list)
    token_script: list[str] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    token_requests: list[dict[str, str]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    done: dict[str, bytes] = field(default_factory=dict)  # idempotency key -> response body
    pending: set[str] = field(default_factory=set)
    processed: int = 0  # batches really predicted (not replayed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["method"] == "POST" and scope["path"] == "/auth/token":
            await self._token(body, send)
        elif scope["method"] == "POST" and scope["path"] == f"/{self.service}/v1/predict":
            await self._predict(scope, headers, body, send)
        else:
            await _json(send, 404, _envelope("not_found", "no such route on the gateway"))

    async def _token(self, body: bytes, send: Any) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.token_requests.append(form)
        if self.token_script:
            status = int(self.token_script.pop(0))
            await _json(send, status, _envelope("service_unavailable", "auth is restarting"))
            return
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            await _json(send, 401, _envelope("invalid_client", "invalid client credentials"))
            return
        token = f"token-{len(self.token_requests)}"
        self.tokens[token] = time.monotonic() + self.expires_in
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in,
                  "scope": form.get("scope", "")}  # fmt: skip
        await _json(send, 200, answer)

    async def _predict(
        self, scope: dict[str, Any], headers: dict[str, str], body: bytes, send: Any
    ) -> None:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        key = headers.get("idempotency-key")
        call = Call(key, token, time.monotonic(), hashlib.sha256(body).hexdigest(),
                    tuple(scope["client"]))  # fmt: skip
        self.calls.append(call)
        if self.tokens.get(token, 0.0) <= time.monotonic():
            call.answer = "401"
            await _json(send, 401, _envelope("unauthorized", "token expired or unknown"))
            return
        if key in self.pending:
            call.answer = "409"
            await _json(send, 409, _envelope("conflict", "still being processed"), retry_after="1")
            return
        if key is not None and key in self.done:
            call.answer = "replayed"
            await _raw(send, 200, self.done[key], {"idempotent-replayed": "true"})
            return
        answer = call.answer = self.script.pop(0) if self.script else "ok"
        kind, _, arg = answer.partition(":")
        if kind == "429":
            await _json(send, 429, _envelope("too_many_requests", "slow down"), retry_after=arg)
        elif kind in ("502", "503", "504"):
            await _json(send, int(kind), _envelope("service_unavailable", "upstream down"))
        elif kind == "401":
            self.tokens.pop(token, None)  # revoked
            await _json(send, 401, _envelope("unauthorized", "token revoked"))
        elif kind == "422":
            details = [{"field": "body.measurements.0.AT", "message": "too cold", "type": "range"}]
            await _json(send, 422, _envelope("validation_error", "AT out of range", details))
        elif kind == "drop":  # processed, then the connection breaks mid-answer
            response = self._process(key, body)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(response)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": response[:5], "more_body": True})
            raise RuntimeError("connection dropped on purpose")
        elif kind == "slow":  # the client times out; the batch completes afterwards
            if key is not None:
                self.pending.add(key)
            await asyncio.sleep(float(arg))
            self.pending.discard(key or "")
            await _raw(send, 200, self._process(key, body))
        else:
            await _raw(send, 200, self._process(key, body))

    def _process(self, key: str | None, body: bytes) -> bytes:
        request = json.loads(body)
        predictions = [
            {"timestamp": m["timestamp"], "level": m.get("want", "NORMAL")}
            for m in request["measurements"]
        ]
        levels = [p["level"] for p in predictions]
        level = max(levels, key=["NORMAL", "ALERTE", "CRITIQUE"].index)
        response = json.dumps({"service": self.service, "asset_id": request["asset_id"],
                               "level": level, "predictions": predictions}).encode()  # fmt: skip
        self.processed += 1
        if key is not None:
            self.done[key] = response
        return response

    def idem_keys(self) -> list[str | None]:
        return [c.key for c in self.calls]


def _envelope(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


async def _json(send: Any, status: int, doc: dict[str, Any], retry_after: str = "") -> None:
    await _raw(send, status, json.dumps(doc).encode(), {"retry-after": retry_after})


async def _raw(send: Any, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items() if v]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(app: Any, tls_dir: Path | None = None) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port (HTTPS with the dev
    certificate of ``tls_dir``); yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if tls_dir is not None:
        files = ensure_dev_certificate(tls_dir)
        tls = {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
    config = uvicorn.Config(app, log_level="critical", lifespan="off", **tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if tls_dir else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, str]]:
    fake = FakeGateway()
    with serving(fake) as url:
        yield fake, url


def batches(n: int, rows: int = 5, want: str = "NORMAL") -> list[ReplayRequest]:
    """``n`` requests of ``rows`` synthetic measurements each (the fake echoes ``want``)."""
    out = []
    for b in range(n):
        ms = [{"timestamp": f"2015-01-01T{b:02d}:{i:02d}:00Z", "want": want} for i in range(rows)]
        out.append(ReplayRequest("GT1", ms, rows))
    return out


def run(url: str, requests: list[ReplayRequest], **kwargs: Any) -> rp.Summary:
    kwargs.setdefault("policy", FAST)
    return rp.replay(
        SERVICE, requests, route=rp.gateway_route(url),
        credentials=rp.Credentials(CLIENT_ID, CLIENT_SECRET), **kwargs,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- requests


def test_windows_carry_history_and_count_new_rows() -> None:
    rows = [{"timestamp": str(i)} for i in range(10)]
    plain = list(replay_windows("A", rows, batch=4))
    assert [r.rows for r in plain] == [4, 4, 2]
    assert [m["timestamp"] for m in plain[2].measurements] == ["8", "9"]
    windowed = list(replay_windows("A", rows, batch=3, history=2))
    assert [r.rows for r in windowed] == [3, 3, 2]
    assert [len(r.measurements) for r in windowed] == [5, 5, 4]
    assert [m["timestamp"] for m in windowed[1].measurements] == ["3", "4", "5", "6", "7"]
    assert list(replay_windows("A", rows[:2], batch=3, history=2)) == []  # history only


def test_limit_cuts_the_last_request_and_keeps_its_history() -> None:
    rows = [{"timestamp": str(i)} for i in range(20)]
    cut = list(rp.limited(replay_windows("A", rows, batch=5, history=3), limit=7))
    assert [r.rows for r in cut] == [5, 2]
    assert [m["timestamp"] for m in cut[1].measurements] == ["5", "6", "7", "8", "9"]
    assert sum(r.rows for r in rp.limited(replay_windows("A", rows, 5), None)) == 20


def test_credentials_from_options_file_or_a_clear_message(tmp_path: Path) -> None:
    scope = rp.scope_for(SERVICE)
    assert rp.load_credentials("a", "b", tmp_path, scope) == rp.Credentials("a", "b")
    with pytest.raises(rp.ReplayError) as missing:
        rp.load_credentials(None, None, tmp_path, scope)
    message = str(missing.value)
    assert "vigie clients add" in message and scope in message
    assert str(tmp_path / "replay-client.json") in message
    with pytest.raises(rp.ReplayError, match="both --client-id and --client-secret"):
        rp.load_credentials("a", None, tmp_path, scope)
    (tmp_path / "replay-client.json").write_text('{"client_id": "dev"}')
    with pytest.raises(rp.ReplayError, match="expected"):
        rp.load_credentials(None, None, tmp_path, scope)
    (tmp_path / "replay-client.json").write_text(
        json.dumps({"client_id": "dev", "client_secret": "x"})
    )
    assert rp.load_credentials(None, None, tmp_path, scope) == rp.Credentials("dev", "x")


# ---------------------------------------------------------------------------------- protocol


def test_replay_through_gateway_paths_counts_rows_and_levels(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    requests = batches(4) + batches(2, want="ALERTE") + batches(1, rows=3, want="CRITIQUE")
    summary = run(url, requests)
    assert summary.ok, summary.as_dict()
    d = summary.as_dict()
    assert (d["rows"], d["requests"], d["succeeded"], d["failed"]) == (33, 7, 7, 0)
    assert d["levels"] == {"NORMAL": 20, "ALERTE": 10, "CRITIQUE": 3}
    assert d["retries"] == 0 and d["idempotent_replays"] == 0 and d["token_fetches"] == 1
    assert d["latency_ms"]["p50"] is not None and d["latency_ms"]["p99"] >= d["latency_ms"]["p50"]
    # one token for the service's scopes, one key per batch, one keep-alive connection
    assert fake.token_requests[0]["grant_type"] == "client_credentials"
    assert fake.token_requests[0]["scope"] == f"predict:{SERVICE} feedback:{SERVICE}"
    assert len(set(fake.idem_keys())) == 7 and None not in fake.idem_keys()
    assert len({c.client for c in fake.calls}) == 1


def test_retries_reuse_the_key_and_honour_retry_after(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.script = ["503", "429:1", "502", "504"]
    summary = run(url, batches(2))
    assert summary.ok and summary.retries == 4 and summary.requests == 2
    first = [c for c in fake.calls if c.key == fake.calls[0].key]
    assert [c.answer for c in first] == ["503", "429:1", "502", "504", "ok"]
    assert len({c.fingerprint for c in first}) == 1  # the same body every time
    assert first[2].at - first[1].at >= 0.95  # Retry-After: 1 was honoured
    assert first[1].at - first[0].at < 0.5  # backoff, not Retry-After, after the 503


def test_dropped_connection_is_retried_and_the_replayed_answer_counted(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    fake.script = ["drop"]
    summary = run(url, batches(2, want="ALERTE"))
    assert summary.ok, summary.as_dict()
    assert summary.retries == 1 and summary.idempotent_replays == 1
    assert [c.answer for c in fake.calls] == ["drop", "replayed", "ok"]
    assert fake.processed == 2  # the dropped batch was predicted once
    assert summary.levels["ALERTE"] == 10


def test_timeout_then_in_progress_conflict_then_replayed(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    fake.script = ["slow:0.8"]
    summary = run(url, batches(1), timeout_s=0.3)
    assert summary.ok, summary.as_dict()
    answers = [c.answer for c in fake.calls]
    assert answers[0] == "slow:0.8" and answers[-1] == "replayed" and "409" in answers
    assert len(set(fake.idem_keys())) == 1 and summary.idempotent_replays == 1


def test_attempts_are_bounded_and_the_replay_goes_on(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.script = ["503"] * 4
    summary = run(url, batches(2), policy=rp.RetryPolicy(max_retries=3, backoff_s=0.01))
    d = summary.as_dict()
    assert not summary.ok and (d["failed"], d["succeeded"]) == (1, 1)
    assert d["errors_by_status"] == {"503": 1} and d["retries"] == 3
    assert fake.idem_keys().count(fake.calls[0].key) == 4  # 1 + max_retries attempts
    assert d["errors"][0]["code"] == "service_unavailable"


def test_client_errors_are_reported_with_their_fields(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.script = ["422"]
    reports: list[dict[str, Any]] = []
    summary = run(url, batches(3), on_result=lambda _r, _o, rep: rep and reports.append(rep))
    assert (summary.failed, summary.succeeded, summary.retries) == (1, 2, 0)
    assert summary.errors_by_status == {"422": 1}
    (report,) = reports
    assert report["code"] == "validation_error" and report["message"] == "AT out of range"
    assert report["details"][0]["field"] == "body.measurements.0.AT"
    assert report["first_timestamp"] == "2015-01-01T00:00:00Z"
    line = rp.describe_error(report)
    assert "422 validation_error: AT out of range" in line and "body.measurements.0.AT" in line


def test_no_answer_at_all_counts_as_network_errors(gateway: tuple[FakeGateway, str]) -> None:
    _fake, url = gateway
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    summary = rp.replay(
        SERVICE, batches(2), credentials=rp.Credentials(CLIENT_ID, CLIENT_SECRET),
        route=lambda piece, path: f"{url if piece == 'auth' else dead}/{piece}{path}",
        policy=rp.RetryPolicy(max_retries=1, backoff_s=0.01),
    )  # fmt: skip
    assert summary.errors_by_status == {rp.NETWORK: 2} and summary.retries == 2
    assert summary.errors[0]["code"] == rp.NETWORK


def test_token_is_renewed_before_it_expires(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.expires_in = 1.0
    summary = run(url, batches(8, rows=2), rate=10.0)  # 16 rows at 10/s: about 1.5 s
    assert summary.ok, summary.as_dict()
    assert summary.token_fetches >= 2
    assert "401" not in [c.answer for c in fake.calls]  # renewed early, never refused


def test_a_refused_token_is_replaced_once(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.script = ["401"]
    summary = run(url, batches(2))
    assert summary.ok and summary.token_fetches == 2 and summary.retries == 0
    assert fake.calls[0].key == fake.calls[1].key and fake.calls[0].token != fake.calls[1].token
    fake.script = ["401", "401"]
    again = run(url, batches(1))
    assert again.errors_by_status == {"401": 1} and not again.ok


def test_token_endpoint_trouble_is_retried_and_a_refusal_aborts(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    fake.token_script = ["503"]
    assert run(url, batches(1)).ok
    bad = rp.replay(
        SERVICE, batches(2), route=rp.gateway_route(url), policy=FAST,
        credentials=rp.Credentials(CLIENT_ID, "wrong"),
    )  # fmt: skip
    assert bad.aborted is not None and "401 invalid_client" in bad.aborted
    assert bad.requests == 0 and not bad.ok


def test_pacing_follows_the_clock_without_drift(gateway: tuple[FakeGateway, str]) -> None:
    fake, url = gateway
    fake.script = ["slow:0.04"] * 10  # each answer takes 40 ms of the 50 ms per batch
    summary = run(url, batches(10, rows=5), rate=100.0)  # 5 rows per batch: one every 50 ms
    assert summary.ok
    last = fake.calls[-1].at - fake.calls[0].at
    # batch k is due k * 50 ms after the start (the first one also fetched the token); sleeping
    # 50 ms after each answer instead would drift to 9 * 90 = 810 ms
    assert 0.40 <= last < 0.65, last


# ------------------------------------------------------------------------------ the command


@pytest.fixture
def turbine_csv(tmp_path: Path) -> Path:
    path = tmp_path / "turbine.csv"
    turbine_frame(rows_per_year=30, years=(2014,)).to_csv(path, index=False)
    return path


def vigie_replay(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "VIGIE_VAR_DIR": str(tmp_path / "var"), **env}
    for name in ("VIGIE_CLIENT_ID", "VIGIE_CLIENT_SECRET", "VIGIE_GATEWAY_URL",
                 "VIGIE_ASSET_CONFIG", "VIGIE_KEYS_DIR"):  # fmt: skip
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "vigie", "replay", SERVICE, *args],
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_command_replays_a_csv_through_the_gateway(
    gateway: tuple[FakeGateway, str], turbine_csv: Path, tmp_path: Path
) -> None:
    fake, url = gateway
    done = vigie_replay(
        tmp_path, "--data", str(turbine_csv), "--batch", "8", "--limit", "20", "--json",
        VIGIE_GATEWAY_URL=url, VIGIE_CLIENT_ID=CLIENT_ID, VIGIE_CLIENT_SECRET=CLIENT_SECRET,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows"], summary["requests"], summary["ok"]) == (20, 3, True)
    assert summary["levels"]["NORMAL"] == 20
    assert len(fake.calls) == 3 and len(set(fake.idem_keys())) == 3

    fake.script = ["422"]
    human = vigie_replay(
        tmp_path, "--data", str(turbine_csv), "--gateway", url, "--client-id", CLIENT_ID,
        "--client-secret", CLIENT_SECRET,
    )  # fmt: skip
    assert human.returncode == 1
    assert "422 validation_error: AT out of range" in human.stderr
    assert "errors by status: 422 x1" in human.stdout and "rows in 2 requests" in human.stdout


def test_command_reads_the_dev_client_file_and_says_how_to_register_one(
    gateway: tuple[FakeGateway, str], turbine_csv: Path, tmp_path: Path
) -> None:
    _fake, url = gateway
    missing = vigie_replay(tmp_path, "--data", str(turbine_csv), "--gateway", url)
    assert missing.returncode == 2
    assert "vigie clients add" in missing.stderr and f"predict:{SERVICE}" in missing.stderr
    keys = tmp_path / "var" / "keys"
    keys.mkdir(parents=True)
    (keys / rp.CREDENTIALS_FILE).write_text(
        json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    )
    done = vigie_replay(tmp_path, "--data", str(turbine_csv), "--gateway", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 30


def test_gateway_certificate_is_verified(turbine_csv: Path, tmp_path: Path) -> None:
    var, other = tmp_path / "var", tmp_path / "other"
    cert = var / "tls" / "gateway.crt"
    with serving(FakeGateway(), tls_dir=cert.parent) as url:
        assert url.startswith("https://")

        def replay_with(verify: Any) -> rp.Summary:
            return run(url, batches(1), verify=verify)

        # the dev certificate under <var>/tls is trusted by default, and by the command
        assert replay_with(rp.tls_verify(None, False, var)).ok
        done = vigie_replay(
            tmp_path, "--data", str(turbine_csv), "--gateway", url,
            VIGIE_CLIENT_ID=CLIENT_ID, VIGIE_CLIENT_SECRET=CLIENT_SECRET,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # elsewhere it is unknown: nothing gets through (not even the token request)...
        started = time.monotonic()
        refused = run(
            url, batches(1), verify=rp.tls_verify(None, False, other), policy=rp.RetryPolicy()
        )
        assert refused.aborted is not None and "CERTIFICATE_VERIFY_FAILED" in refused.aborted
        assert time.monotonic() - started < 2.0  # permanent: not retried (5 retries take 7 s+)
        # ... unless it is given (--cacert) or verification is off (--insecure)
        assert replay_with(rp.tls_verify(cert, False, other)).ok
        assert replay_with(rp.tls_verify(None, True, other)).ok
