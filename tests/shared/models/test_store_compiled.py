"""ModelStore and compiled forms: the card lists them with their sha256, loading verifies them
before unpickling, and every reason not to use them is one log line (or, for a tampered file,
a refused model)."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from tests.shared.models.test_store import SideEffect, card_fields
from tests.support.lean_model import LeanWrapped
from vigie.models.card import ModelCard
from vigie.models.compile import Part, compile_parts
from vigie.models.compiled import CompiledPredictor
from vigie.models.predictors import NO_COMPILED_FORM
from vigie.models.store import (
    ModelIntegrityError,
    ModelLoadError,
    ModelStore,
)

SERVICE = "demo"
RNG = np.random.default_rng(0)
X = RNG.normal(size=(500, 4))
Y = X @ [1.0, -2.0, 0.5, 0.0] + RNG.normal(0, 0.1, 500)
ROWS = np.random.default_rng(1).normal(size=(100, 4))


# A service-like model: two inner estimators and the vigie.models.compiled hook, in a module that
# imports no scikit-learn (what a serving artifact needs).
Wrapped = LeanWrapped


@pytest.fixture(scope="module")
def model() -> Wrapped:
    return Wrapped(RandomForestRegressor(20, random_state=0).fit(X, Y), Ridge().fit(X, Y))


def publish(store: ModelStore, model: Wrapped, tolerance: float = 1e-4) -> Any:
    parts = [Part(n, e, ROWS, tolerance, "u") for n, e in model.compiled_parts().items()]
    return store.publish(SERVICE, model, {**card_fields(), "compiled": compile_parts(parts)})


def modelstore_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vigie.models.store"]


def test_published_compiled_parts_are_listed_verified_and_served(
    tmp_path: Path, model: Wrapped, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    published = publish(store, model)
    folder = published.path.parent
    card = published.card
    assert card.compiled is not None and card.compiled.runtime == "onnxruntime"
    assert {"skl2onnx", "onnx", "onnxruntime"} <= set(card.compiled.libraries)
    for part in card.compiled.parts:
        data = (folder / f"model.{part.name}.onnx").read_bytes()
        assert part.file == f"model.{part.name}.onnx"
        assert part.sha256 == hashlib.sha256(data).hexdigest() and part.bytes == len(data)
        assert part.max_abs_diff and max(part.max_abs_diff.values()) <= 1e-4
        assert part.input_dtype == "float32" and part.reason is None
    # The card on disk says the same, and validates as a card.
    on_disk = json.loads((folder / "card.json").read_text())
    assert ModelCard.model_validate(on_disk) == card

    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = store.load_current(SERVICE)
    assert set(loaded.compiled) == {"forest", "linear"}
    assert all(isinstance(p, CompiledPredictor) for p in loaded.compiled.values())
    assert isinstance(loaded.model.forest, RandomForestRegressor)  # the reference stays joblib
    serving = loaded.serving()
    assert isinstance(serving.model.forest, CompiledPredictor)
    assert isinstance(serving.model.linear, CompiledPredictor)
    np.testing.assert_allclose(serving.model.predict(ROWS), model.predict(ROWS), atol=1e-4)
    [line] = modelstore_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith(f"{SERVICE} {loaded.version}: predictions use the compiled")
    assert "forest (model.forest.onnx, float32 input" in line.getMessage()
    assert loaded.compiled_status in line.getMessage()


def test_a_card_without_a_compiled_form_still_loads_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    published = store.publish(SERVICE, {"v": 1}, card_fields())
    assert published.card.compiled is None
    # A card written before compiled inference has no such key at all.
    card_path = published.path.parent / "card.json"
    card = json.loads(card_path.read_text())
    del card["compiled"]
    card_path.write_text(json.dumps(card))
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = store.load_current(SERVICE)
    assert loaded.model == {"v": 1} and loaded.compiled == {}
    assert loaded.serving() is loaded
    [line] = modelstore_lines(caplog)
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        f"{SERVICE} {loaded.version}: predictions use the joblib model: {NO_COMPILED_FORM}"
    )


@pytest.mark.parametrize("tamper", ["flip_byte", "append_byte", "delete"])
def test_a_tampered_compiled_file_refuses_the_model_before_unpickling(
    tmp_path: Path, model: Wrapped, tamper: str
) -> None:
    marker = tmp_path / "unpickled"
    store = ModelStore(tmp_path / "models")
    published = publish(store, replace(model, marker=SideEffect(marker)))
    marker.unlink(missing_ok=True)  # publishing ran joblib.dump, not load
    onnx_file = published.path.parent / "model.forest.onnx"
    expected = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    data = bytearray(onnx_file.read_bytes())
    if tamper == "flip_byte":
        data[len(data) // 2] ^= 0x01
        onnx_file.write_bytes(bytes(data))
    elif tamper == "append_byte":
        onnx_file.write_bytes(bytes(data) + b"\x00")
    else:
        onnx_file.unlink()
    with pytest.raises(ModelIntegrityError) as excinfo:
        store.load_current(SERVICE)
    message = str(excinfo.value)
    assert message.startswith(f"refusing the compiled form {onnx_file}")
    assert expected in message
    if tamper != "delete":
        assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() in message
    else:
        assert "missing" in message
    assert not marker.exists()  # the joblib artifact was not unpickled either
    # compiled=False verifies the files all the same
    with pytest.raises(ModelIntegrityError):
        store.load_current(SERVICE, compiled=False)


def test_a_part_refused_at_training_is_served_by_joblib_and_said_once(
    tmp_path: Path, model: Wrapped, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    # The forest's float32 sum differs by ~1e-7: a tolerance of 1e-12 refuses it (the Ridge's
    # float32 coefficients too: everything stays joblib).
    published = publish(store, model, tolerance=1e-12)
    assert published.card.compiled is not None
    assert all(p.file is None and p.reason for p in published.card.compiled.parts)
    assert all(p.max_abs_diff for p in published.card.compiled.parts)  # measured all the same
    assert not list(published.path.parent.glob("*.onnx"))
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = store.load_current(SERVICE)
    assert loaded.compiled == {} and loaded.serving() is loaded
    [line] = modelstore_lines(caplog)
    assert line.levelno == logging.WARNING
    text = line.getMessage()
    assert "predictions use the joblib model (forest: refused at training: max |compiled" in text
    assert "exceeds the tolerance 1e-12" in text


def test_some_parts_compiled_others_joblib(
    tmp_path: Path, model: Wrapped, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    parts = [
        Part("forest", model.forest, ROWS, 1e-4, "u"),
        Part("linear", model.linear, ROWS, 1e-12, "u"),
    ]
    store.publish(SERVICE, model, {**card_fields(), "compiled": compile_parts(parts)})
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = store.load_current(SERVICE)
    assert set(loaded.compiled) == {"forest"}
    serving = loaded.serving().model
    assert isinstance(serving.forest, CompiledPredictor) and isinstance(serving.linear, Ridge)
    [line] = modelstore_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "compiled form (ONNX Runtime, one thread, sha256 verified) for forest" in (
        line.getMessage()
    )
    assert "; the joblib estimator for linear: refused at training" in line.getMessage()


def test_without_onnxruntime_the_joblib_model_serves(
    tmp_path: Path, model: Wrapped, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    store = ModelStore(tmp_path)
    publish(store, model)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = store.load_current(SERVICE)
    assert loaded.compiled == {}
    [line] = modelstore_lines(caplog)
    assert line.getMessage().endswith(
        "predictions use the joblib model (forest: onnxruntime not installed; "
        "linear: onnxruntime not installed)"
    )


def test_compiled_false_builds_no_session(tmp_path: Path, model: Wrapped) -> None:
    store = ModelStore(tmp_path)
    publish(store, model)
    loaded = store.load_current(SERVICE, compiled=False)
    assert loaded.compiled == {} and loaded.serving() is loaded


def test_a_card_naming_a_file_outside_its_folder_is_refused(tmp_path: Path, model: Wrapped) -> None:
    store = ModelStore(tmp_path)
    published = publish(store, model)
    card_path = published.path.parent / "card.json"
    card = json.loads(card_path.read_text())
    card["compiled"]["parts"][0]["file"] = "../other/model.onnx"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="invalid compiled file"):
        store.load_current(SERVICE)


def test_publish_takes_only_a_compiled_bundle(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="CompiledBundle"):
        ModelStore(tmp_path).publish(SERVICE, {"v": 1}, {**card_fields(), "compiled": {}})


# -- the serving artifact ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lean_model(model: Wrapped) -> LeanWrapped:
    return model


publish_lean = publish


def test_a_fully_compiled_model_gets_a_serving_artifact_that_workers_load(
    tmp_path: Path, lean_model: LeanWrapped
) -> None:
    store = ModelStore(tmp_path)
    published = publish_lean(store, lean_model)
    serving = published.card.compiled.serving
    path = published.path.parent / "serving.joblib"
    assert serving is not None and serving.file == "serving.joblib"
    assert serving.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size < published.path.stat().st_size / 5  # no forest inside

    lean = store.load_current(SERVICE, lean=True)
    assert lean.path == path
    assert isinstance(lean.model.forest, CompiledPredictor)
    assert isinstance(lean.model.linear, CompiledPredictor)
    full = store.load_current(SERVICE)  # everyone else: the joblib model, compiled beside it
    assert full.path == published.path and not isinstance(full.model.forest, CompiledPredictor)
    np.testing.assert_allclose(
        lean.model.predict(ROWS), full.serving().model.predict(ROWS), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(lean.model.predict(ROWS), lean_model.predict(ROWS), atol=1e-3)


def test_a_serving_worker_imports_no_scikit_learn(tmp_path: Path, lean_model: LeanWrapped) -> None:
    publish_lean(ModelStore(tmp_path), lean_model)
    code = (
        "import sys\n"
        "from vigie.models.store import ModelStore\n"
        f"m = ModelStore(__import__('pathlib').Path({str(tmp_path)!r}))"
        f".load_current({SERVICE!r}, lean=True)\n"
        "assert type(m.model.forest).__name__ == 'CompiledPredictor'\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'sklearn', 'scipy', 'pandas'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_no_serving_artifact_when_a_part_stays_joblib(
    tmp_path: Path, lean_model: LeanWrapped
) -> None:
    store = ModelStore(tmp_path)
    published = publish_lean(store, lean_model, tolerance=-1.0)  # every part refused
    assert published.card.compiled.serving is None
    assert not (published.path.parent / "serving.joblib").exists()
    lean = store.load_current(SERVICE, lean=True)  # the joblib model serves, as before
    assert lean.path == published.path and lean.compiled == {}


def test_a_tampered_serving_artifact_is_refused_before_unpickling(
    tmp_path: Path, lean_model: LeanWrapped
) -> None:
    store = ModelStore(tmp_path)
    published = publish_lean(store, lean_model)
    marker = tmp_path / "unpickled"
    path = published.path.parent / "serving.joblib"
    joblib.dump(replace(lean_model, marker=SideEffect(marker)), path)
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelIntegrityError, match=r"serving\.joblib: its sha256 is .* card says"):
        store.load_current(SERVICE, lean=True)
    assert not marker.exists()
