"""The checks every service's ``test_compiled.py`` runs on its model trained by ``vigie train``:
card entries, a tampered file over HTTP, a card without a compiled form."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import RedisServer, ServiceProcess
from tests.support.serving import make_served
from vigie.models.predictors import NO_COMPILED_FORM
from vigie.models.store import ModelStore


def assert_card_lists_compiled_parts(
    models: Path, service: str, parts: dict[str, float]
) -> dict[str, Any]:
    """The card of the current model lists ``parts`` (name -> tolerance), each published with
    its file, sha256, size and largest difference within the tolerance."""
    store = ModelStore(models)
    version = store.current_version(service)
    card = store.read_card(service, version)
    assert card.compiled is not None
    listed = {p.name: p for p in card.compiled.parts}
    assert set(listed) == set(parts)
    for name, tolerance in parts.items():
        p = listed[name]
        assert p.reason is None and p.file is not None, p.reason
        data = (store.service_dir(service) / version / p.file).read_bytes()
        assert p.sha256 == hashlib.sha256(data).hexdigest() and p.bytes == len(data)
        assert p.tolerance == tolerance and p.rows_checked > 0
        assert p.max_abs_diff and 0 <= max(p.max_abs_diff.values()) <= tolerance
        assert p.input_dtype in ("float32", "float64")
    return listed


def version_dir(models: Path, service: str) -> Path:
    store = ModelStore(models)
    return store.service_dir(service) / store.current_version(service)


def tamper_onnx(models: Path, service: str, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``models`` whose first compiled file has one byte flipped (still valid ONNX
    more often than not: only the hash can tell); returns the copy and the file."""
    copy = tmp_path / "tampered-models"
    shutil.copytree(models, copy)
    onnx_file = sorted(version_dir(copy, service).glob("*.onnx"))[0]
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    return copy, onnx_file


def drop_compiled_form(models: Path, service: str, tmp_path: Path) -> Path:
    """A copy of ``models`` whose current card has no ``compiled`` section and no .onnx file,
    as a model trained before compiled inference."""
    copy = tmp_path / "old-models"
    shutil.copytree(models, copy)
    folder = version_dir(copy, service)
    card = json.loads((folder / "card.json").read_text())
    del card["compiled"]
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    for f in folder.glob("*.onnx"):
        f.unlink()
    return copy


def assert_old_card_loads_joblib_with_one_log_line(
    models: Path, service: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Any:
    """Load a card without a compiled form: the joblib model serves, one log line says why.
    Returns the loaded model."""
    old = drop_compiled_form(models, service, tmp_path)
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = ModelStore(old).load_current(service)
    assert loaded.compiled == {}
    assert loaded.card.compiled is None
    assert loaded.serving() is loaded  # nothing to swap: the joblib estimators serve
    lines = [r for r in caplog.records if r.name == "vigie.models.store"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert NO_COMPILED_FORM in lines[0].getMessage()
    assert (
        lines[0].getMessage().startswith(f"{service} {loaded.version}: predictions use the joblib")
    )
    return loaded


def assert_tampered_onnx_makes_readyz_503(
    models: Path, service: str, tmp_path: Path, probe: dict[str, Any]
) -> None:
    """A service whose compiled file was modified does not load (readyz and predict 503) and
    its log names the file and both hashes."""
    copy, onnx_file = tamper_onnx(models, service, tmp_path)
    actual = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    redis = RedisServer(tmp_path / "redis").start()
    served = make_served(service, tmp_path, copy, redis)
    log = tmp_path / "service.log"
    process = ServiceProcess(service, served.env, log, workers=1)
    try:
        served.service = process.start(ready_path="/healthz")
        with served.client() as c:
            ready = c.get("/readyz")
            predict = c.post("/v1/predict", json=probe, headers=served.headers())
    finally:
        process.stop()
        redis.stop()
    assert ready.status_code == 503 and predict.status_code == 503
    message = ready.json()["error"]["message"]
    assert "refusing the compiled form" in message and onnx_file.name in message
    text = log.read_text()
    assert "readyz answers 503" in text and f"its sha256 is {actual}" in text
    assert "predictions use" not in text  # neither form was loaded
