"""JSON logs and request ids: the formatter, the RequestContext middleware in-process, and a real
prediction service under gunicorn whose log file is read back."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.servers import wait_until
from tests.support.serving import serve, train_synthetic
from tests.support.synthetic import measurements, transformer_frame, write_transformer_data
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.contract.errors import install_error_handlers
from vigie.obs import logs
from vigie.obs.logs import (
    ACCESS_LOGGER,
    REQUEST_ID,
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    install_request_context,
    logging_config,
)
from vigie.serve.app import create_app
from vigie.settings import VigieSettings
from vigie_services import load_service

SERVICE = "transformer-temperature"
HISTORY = 72
GENERATED = re.compile(r"[0-9a-f]{32}")


# -- formatter ----------------------------------------------------------------------------------
def _emit(formatter: logging.Formatter, level: int, msg: str, *args: Any, **kw: Any) -> str:
    """One record through a handler built like the real one (filter + formatter)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"vigie.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.log(level, msg, *args, **kw)
    return out.getvalue()


@pytest.fixture
def service_name() -> Iterator[str]:
    logs.set_service("svc-under-test")
    yield "svc-under-test"
    logs.set_service(None)


def test_json_line_outside_a_request(service_name: str) -> None:
    line = _emit(JsonFormatter(), logging.WARNING, "disk %s%% full", 93)
    assert line.endswith("\n") and line.count("\n") == 1
    data = json.loads(line)
    assert list(data)[:5] == ["time", "level", "logger", "message", "process"]
    assert data["level"] == "WARNING" and data["message"] == "disk 93% full"
    assert data["logger"].startswith("vigie.test.")
    assert data["service"] == service_name
    assert isinstance(data["process"], int)
    assert "request_id" not in data
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["time"])


def test_json_line_inside_a_request_with_extras(service_name: str) -> None:
    token = REQUEST_ID.set("req-42")
    try:
        line = _emit(
            JsonFormatter(), logging.INFO, "scored", extra={"asset_id": "T1", "rows": 3, "ok": True}
        )
    finally:
        REQUEST_ID.reset(token)
    data = json.loads(line)
    assert data["request_id"] == "req-42"
    assert (data["asset_id"], data["rows"], data["ok"]) == ("T1", 3, True)
    assert data["service"] == service_name


def test_json_line_keeps_an_explicit_request_id_and_the_traceback() -> None:
    token = REQUEST_ID.set("outer")
    try:
        try:
            raise ValueError("bad value")
        except ValueError:
            line = _emit(
                JsonFormatter(), logging.ERROR, "failed", exc_info=True,
                extra={"request_id": "explicit"},
            )  # fmt: skip
    finally:
        REQUEST_ID.reset(token)
    data = json.loads(line)
    assert data["request_id"] == "explicit"
    assert "ValueError: bad value" in data["exc_info"]
    assert "service" not in data  # no service named in this process


def test_text_line_for_humans(service_name: str) -> None:
    token = REQUEST_ID.set("abc")
    try:
        inside = _emit(TextFormatter(), logging.INFO, "hello")
    finally:
        REQUEST_ID.reset(token)
    outside = _emit(TextFormatter(), logging.INFO, "bye")
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(
        rf"{stamp} INFO \d+ {service_name} vigie\.test\.\w+ \[abc\] hello\n", inside
    )
    assert re.fullmatch(rf"{stamp} INFO \d+ {service_name} vigie\.test\.\w+ \[-\] bye\n", outside)


def test_settings_pick_the_format_and_silence_server_access_logs() -> None:
    cfg = logging_config(VigieSettings(log_format="TEXT", log_level="warning"))
    assert cfg["formatters"]["vigie"]["()"] is TextFormatter
    assert cfg["root"] == {"level": "WARNING", "handlers": ["stderr"]}
    for name in ("gunicorn.access", "uvicorn.access"):
        assert cfg["loggers"][name] == {"handlers": [], "propagate": False}
    # access lines follow VIGIE_ACCESS_LOG, not the level of the other logs
    assert cfg["loggers"][ACCESS_LOGGER]["level"] == "INFO"
    debug = logging_config(VigieSettings(log_level="DEBUG"))
    assert debug["formatters"]["vigie"]["()"] is JsonFormatter
    assert debug["loggers"][ACCESS_LOGGER]["level"] == "DEBUG"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_LOG_FORMAT", "text")
    monkeypatch.setenv("VIGIE_ACCESS_LOG", "false")
    settings = VigieSettings()
    assert (settings.log_format, settings.access_log) == ("text", False)
    monkeypatch.setenv("VIGIE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        VigieSettings()


# -- RequestContext, in-process -----------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Captured:
    """Records of the loggers under test, as the real handler would write them."""

    def __init__(self) -> None:
        self.out = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == ACCESS_LOGGER]


@pytest.fixture
def captured() -> Iterator[Captured]:
    cap = Captured()
    handler = logging.StreamHandler(cap.out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    touched = [logging.getLogger(name) for name in (ACCESS_LOGGER, "vigie.contract.errors")]
    saved = [(lg, lg.level) for lg in touched]
    for lg in touched:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    yield cap
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


@pytest.fixture
def runtime_settings(tmp_path: Path) -> VigieSettings:
    init_keys(tmp_path / "keys")
    return VigieSettings(
        var_dir=tmp_path / "var", keys_dir=tmp_path / "keys", models_dir=tmp_path / "models",
        jwt_public_keys=None, jwks_url=None, max_body_bytes=1024, asset_config=None,
    )  # fmt: skip


@pytest.fixture
def prediction_app(runtime_settings: VigieSettings) -> FastAPI:
    """The real prediction runtime (no Redis or model needed for these tests)."""
    service = load_service(SERVICE)(runtime_settings)
    return create_app(service, runtime_settings)


def _client(app: FastAPI, **kw: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567), **kw)
    return httpx.AsyncClient(transport=transport, base_url="http://vigie.test")


def _token(settings: VigieSettings) -> str:
    key = load_signing_key(settings.resolved_keys_dir)
    return issue_token(key, sub="scada", scopes=[f"predict:{SERVICE}"], ttl_s=600)


@pytest.mark.anyio
async def test_a_valid_request_id_is_passed_back_and_logged(
    prediction_app: FastAPI, captured: Captured
) -> None:
    rid = "gw-1a2b.3c:4d_5E-6f"
    async with _client(prediction_app) as c:
        r = await c.get(
            "/v1/nothing-here?token=s3cret",
            headers={"X-Request-ID": rid, "User-Agent": "probe/1.0"},
        )
    assert r.status_code == 404
    assert r.headers.get_list("x-request-id") == [rid]
    [line] = captured.access()
    assert line["request_id"] == rid and line["level"] == "INFO"
    assert line["message"].startswith("GET /v1/nothing-here 404 ")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/nothing-here", 404)
    assert (line["client"], line["user_agent"]) == ("10.1.2.3", "probe/1.0")
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert "s3cret" not in captured.out.getvalue()


@pytest.mark.parametrize(
    "given",
    [b"", b"x" * 65, b"has space", b"semi;colon", b"<script>", b"caf\xc3\xa9", b"a/b", b"\x00"],
    ids=["empty", "too-long", "space", "semicolon", "markup", "non-ascii", "slash", "nul"],
)
@pytest.mark.anyio
async def test_an_invalid_request_id_is_replaced(
    prediction_app: FastAPI, captured: Captured, given: bytes
) -> None:
    async with _client(prediction_app) as c:
        r = await c.get("/v1/nothing-here", headers=[(b"X-Request-ID", given)])
    [rid] = r.headers.get_list("x-request-id")
    assert GENERATED.fullmatch(rid)
    assert captured.access()[0]["request_id"] == rid


@pytest.mark.anyio
async def test_a_request_id_is_generated_when_absent(
    prediction_app: FastAPI, captured: Captured
) -> None:
    async with _client(prediction_app) as c:
        first = (await c.get("/v1/nothing-here")).headers["x-request-id"]
        second = (await c.get("/v1/nothing-here")).headers["x-request-id"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
    assert [line["request_id"] for line in captured.access()] == [first, second]


@pytest.mark.anyio
async def test_error_responses_carry_the_request_id(
    prediction_app: FastAPI, runtime_settings: VigieSettings, captured: Captured
) -> None:
    auth = {"Authorization": f"Bearer {_token(runtime_settings)}"}
    # The lifespan builds the runtime (no model there: readyz answers 503).
    async with prediction_app.router.lifespan_context(prediction_app), _client(prediction_app) as c:
        unauthorized = await c.post(
            "/v1/predict", json={"asset_id": "T1"}, headers={"X-Request-ID": "e-401"}
        )
        invalid = await c.post(
            "/v1/predict", json={"asset_id": "T 1", "measurements": []},
            headers={**auth, "X-Request-ID": "e-422"},
        )  # fmt: skip
        too_large = await c.post(
            "/v1/predict", content=b"x" * 2000,
            headers={**auth, "Content-Type": "application/json", "X-Request-ID": "e-413"},
        )  # fmt: skip
        not_ready = await c.get("/readyz", headers={"X-Request-ID": "e-503"})
    for r, status, rid in [
        (unauthorized, 401, "e-401"),
        (invalid, 422, "e-422"),
        (too_large, 413, "e-413"),
        (not_ready, 503, "e-503"),
    ]:
        assert r.status_code == status, r.text
        assert r.headers.get_list("x-request-id") == [rid]
        assert "error" in r.json()
    access = {line["request_id"]: line for line in captured.access()}
    assert [access[rid]["status"] for rid in ("e-401", "e-422", "e-413", "e-503")] == [
        401, 422, 413, 503,
    ]  # fmt: skip
    assert access["e-503"]["level"] == "DEBUG"  # a probe: not at INFO


@pytest.mark.anyio
async def test_a_500_carries_the_request_id_and_its_log_line_too(captured: Captured) -> None:
    app = FastAPI()
    install_error_handlers(app)
    install_request_context(app, VigieSettings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    async with _client(app, raise_app_exceptions=False) as c:
        r = await c.get("/boom", headers={"X-Request-ID": "e-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "e-500"
    lines = captured.lines()
    error = next(line for line in lines if line["logger"] == "vigie.contract.errors")
    assert error["request_id"] == "e-500" and "RuntimeError: bug" in error["exc_info"]
    [access] = captured.access()
    assert (access["status"], access["request_id"]) == (500, "e-500")
    assert REQUEST_ID.get() is None  # reset after the request


@pytest.mark.anyio
async def test_probes_log_at_debug_and_the_access_log_can_be_turned_off(
    prediction_app: FastAPI, captured: Captured
) -> None:
    async with _client(prediction_app) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200
    assert [(line["path"], line["level"]) for line in captured.access()] == [
        ("/healthz", "DEBUG"), ("/metrics", "DEBUG"),
    ]  # fmt: skip

    quiet = FastAPI()
    install_request_context(quiet, VigieSettings(access_log=False))

    @quiet.get("/ping")
    async def ping() -> dict[str, str]:
        return {"request_id": logs.current_request_id() or ""}

    async with _client(quiet) as c:
        r = await c.get("/ping", headers={"X-Request-ID": "quiet-1"})
    assert r.json() == {"request_id": "quiet-1"} and r.headers["x-request-id"] == "quiet-1"
    assert len(captured.access()) == 2  # nothing more


@pytest.mark.anyio
async def test_auth_and_alerting_apps_answer_with_the_request_id(
    runtime_settings: VigieSettings, tmp_path: Path
) -> None:
    from vigie_services.alerting.app import create_app as create_alerting
    from vigie_services.alerting.settings import AlertingSettings
    from vigie_services.auth.app import create_app as create_auth

    auth = create_auth(runtime_settings)
    async with _client(auth) as c:
        r = await c.post("/token", data={"grant_type": "password"}, headers={"X-Request-ID": "a-1"})
    assert r.status_code == 400 and r.headers["x-request-id"] == "a-1"

    alerting = create_alerting(
        AlertingSettings(
            **runtime_settings.model_dump(exclude={"database_url"}),
            database_url=f"sqlite:///{tmp_path / 'alerting.db'}",
        )
    )
    async with _client(alerting) as c:
        r = await c.get("/v1/alerts", headers={"X-Request-ID": "al-1"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "al-1"


def test_installing_after_start_is_refused(prediction_app: FastAPI) -> None:
    prediction_app.middleware_stack = prediction_app.build_middleware_stack()
    with pytest.raises(RuntimeError, match="already started"):
        install_request_context(prediction_app, VigieSettings())


# -- a real service under gunicorn --------------------------------------------------------------
def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
    return out


@pytest.mark.integration
def test_gunicorn_service_logs_json_with_the_request_id(tmp_path: Path) -> None:
    models = train_synthetic(
        tmp_path / "trained", SERVICE, lambda d: write_transformer_data(d, hours=900)
    )
    frame = transformer_frame(HISTORY + 20, seed=3, start="2018-05-01")
    body = {"asset_id": "ETTh1", "measurements": measurements(frame, slice(0, HISTORY + 2))}
    rid = f"gw-{uuid.uuid4().hex}"
    with serve(SERVICE, tmp_path / "served", models) as served:
        assert served.service is not None
        with served.client() as c:
            r = c.post("/v1/predict", json=body, headers=served.headers(**{"X-Request-ID": rid}))
            assert r.status_code == 200, r.text
            assert r.headers.get_list("x-request-id") == [rid]
            assert r.json()["request_id"] == rid
            denied = c.get("/v1/model", headers={"X-Request-ID": f"{rid}-401"})
            assert denied.status_code == 401 and denied.headers["x-request-id"] == f"{rid}-401"

            def stored() -> list[dict[str, Any]]:
                page = c.get(
                    "/v1/predictions", params={"asset_id": "ETTh1"}, headers=served.headers()
                ).json()
                return [i for i in page["items"] if i["request_id"] == rid]

            assert len(wait_until(stored, what="stored predictions")) == 3

        def access_line() -> list[dict[str, Any]]:
            return [
                line for line in _json_lines(served.service.log())  # type: ignore[union-attr]
                if line["logger"] == ACCESS_LOGGER and line.get("request_id") == rid
            ]  # fmt: skip

        [line] = wait_until(access_line, what="the access line")
    assert line["level"] == "INFO" and line["service"] == SERVICE
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/predict", 200)
    assert line["client"] == "127.0.0.1" and line["user_agent"].startswith("python-httpx/")
    assert line["duration_ms"] > 0 and isinstance(line["process"], int)

    lines = _json_lines(served.service.log())  # after the shutdown, its lines too
    assert all(line["service"] == SERVICE for line in lines)
    by_logger: dict[str, list[str]] = {}
    for entry in lines:
        by_logger.setdefault(entry["logger"], []).append(entry["message"])
    gunicorn = by_logger["gunicorn.error"]
    assert any(m.startswith("Starting gunicorn") for m in gunicorn)
    assert sum(m.startswith("Booting worker with pid") for m in gunicorn) == 2
    assert any("Shutting down" in m for m in gunicorn)
    assert "Application startup complete." in by_logger["uvicorn.error"]
    assert not [e for e in lines if "color_message" in e]  # uvicorn's ANSI copy of the message
    # one access line per request, from us only; probes (the readiness wait) not at INFO
    assert "uvicorn.access" not in by_logger and "gunicorn.access" not in by_logger
    access = [e for e in lines if e["logger"] == ACCESS_LOGGER]
    assert [e["status"] for e in access if e["request_id"] == f"{rid}-401"] == [401]
    assert not [e for e in access if e["path"] in ("/readyz", "/healthz")]
    loaded = [e for e in lines if "loaded (sha256" in e["message"]]
    assert loaded and all("request_id" not in e for e in loaded)
