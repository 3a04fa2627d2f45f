"""A serving worker of each prediction service imports neither scikit-learn, scipy nor pandas,
nor anything that converts models to ONNX (``onnx``, ``skl2onnx``, :mod:`vigie.models.compile`):
only ``onnxruntime``.

Each service is trained by the real ``vigie train`` on its synthetic data (the same data as its
own tests, so the session's training cache is shared), which publishes the serving artifact
(``serving.joblib``: the model with its compiled parts). A fresh interpreter then does what a
gunicorn worker does (import :mod:`vigie.serve.app`, build the service with ``load_service``, bind
``load_current(lean=True)``), answers one request replayed from the synthetic training file, and
reports which heavy libraries and converters it imported: none, ~110 MB of RSS per worker
saved. Its answers
are the ones this process computes with the full (``model.joblib``) model and the same compiled
parts.

The fallback keeps working without the compiled form: with a card that has none, the worker
unpickles the joblib model (which imports scikit-learn by itself) and serves the same answers as
the joblib model here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.contract.cases import Case
from tests.services.conftest import PREDICTION_CASES
from vigie.contract.batch import Batch
from vigie.contract.service import PredictionService
from vigie.models.store import CARD, SERVING_ARTIFACT, ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services import PREDICTION_SERVICES, load_service

HEAVY = ("sklearn", "scipy", "pandas")


# new rows of the request each service's worker answers
BATCH = {
    "solar-flare": 5,
    "gamma-classifier": 20,
    "transformer-temperature": 3,
    "turbine-nox": 5,
    "energy-anomaly": 3,
}

# What a gunicorn worker does (vigie.serve.app: app_for, Runtime.load_model), then one predict.
WORKER = """
import json, sys
from pathlib import Path

import vigie.serve.app  # noqa: F401
from vigie.contract.batch import Batch
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services import load_service

name, models, request = sys.argv[1:4]
service = load_service(name)(VigieSettings())
loaded = ModelStore(Path(models)).load_current(name, lean=True)
service.bind(loaded)
req = json.loads(Path(request).read_text())
measurements = [service.Measurement.model_validate(m) for m in req["measurements"]]
scored = score_call(service, Batch(req["asset_id"], measurements))
print(json.dumps({
    "artifact": loaded.path.name,
    "compiled": sorted(loaded.compiled),
    "heavy": sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "pandas"}),
    # training-time converters: a worker runs the graphs (onnxruntime), it never builds one
    "converters": sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("onnx", "skl2onnx") or (m + ".").startswith("vigie.models.compile.")
    ),
    "onnxruntime": "onnxruntime" in sys.modules,
    "bodies": json.dumps(scored.items, default=str, sort_keys=True),
}))
"""


def test_every_prediction_service_is_covered() -> None:
    assert {c.service for c in PREDICTION_CASES} == set(PREDICTION_SERVICES) == set(BATCH)


def _request(service: PredictionService[Any, Any], case: Case, models: Path) -> dict[str, Any]:
    """The first request ``vigie replay`` would send for the synthetic training file (without
    analyser values, which would need the correction state in Redis)."""
    data = models.parent / "data" / case.replay_file
    first = next(iter(service.replay_requests(data, None, BATCH[case.service])))
    drop = {"NOX", "CO"}
    return {
        "asset_id": first.asset_id,
        "measurements": [{k: v for k, v in m.items() if k not in drop} for m in first.measurements],
    }


def _bodies(service: PredictionService[Any, Any], request: dict[str, Any]) -> str:
    measurements = [service.Measurement.model_validate(m) for m in request["measurements"]]
    scored = score_call(service, Batch(request["asset_id"], measurements))
    return json.dumps(scored.items, default=str, sort_keys=True)


def _worker(name: str, models: Path, request: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / "request.json"
    path.write_text(json.dumps(request))
    env = {**os.environ, "VIGIE_MODELS_DIR": str(models), "VIGIE_VAR_DIR": str(tmp / "var")}
    env.pop("VIGIE_ASSET_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, name, str(models), str(path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_a_serving_worker_imports_no_sklearn_scipy_or_pandas(
    prediction_case: Case, case_models: Path, tmp_path: Path
) -> None:
    name, models = prediction_case.service, case_models
    store = ModelStore(models)
    card = store.read_card(name, store.current_version(name))
    assert card.compiled is not None
    refused = {p.name: p.reason for p in card.compiled.parts if p.file is None}
    assert not refused, f"{name}: parts not compiled on the synthetic data: {refused}"
    assert card.compiled.serving is not None and card.compiled.serving.file == SERVING_ARTIFACT

    reference = load_service(name)(VigieSettings(asset_config=None))
    reference.bind(store.load_current(name))  # model.joblib with the same compiled parts
    request = _request(reference, prediction_case, models)

    worker = _worker(name, models, request, tmp_path)
    assert worker["artifact"] == SERVING_ARTIFACT  # not the joblib fallback
    assert worker["compiled"] == sorted(p.name for p in card.compiled.parts)
    assert worker["heavy"] == [], f"{name}: a serving worker imported {worker['heavy']}"
    assert worker["converters"] == [], f"{name}: a serving worker imported {worker['converters']}"
    assert worker["onnxruntime"]  # what runs the compiled parts
    assert worker["bodies"] == _bodies(reference, request)


def test_without_a_compiled_form_the_joblib_model_serves(
    prediction_case: Case, case_models: Path, tmp_path: Path
) -> None:
    name = prediction_case.service
    models = tmp_path / "old-card"
    shutil.copytree(case_models / name, models / name, symlinks=True)
    store = ModelStore(models)
    folder = store.service_dir(name) / store.current_version(name)
    card = json.loads((folder / CARD).read_text())
    card.pop("compiled")  # a card written before compiled inference
    (folder / CARD).write_text(json.dumps(card))

    reference = load_service(name)(VigieSettings(asset_config=None))
    reference.bind(store.load_current(name))
    request = _request(reference, prediction_case, case_models)

    worker = _worker(name, models, request, tmp_path)
    assert worker["artifact"] == "model.joblib" and worker["compiled"] == []
    assert "sklearn" in worker["heavy"]  # unpickling the estimators imported it
    assert worker["converters"] == []  # the fallback converts nothing either
    assert worker["bodies"] == _bodies(reference, request)
