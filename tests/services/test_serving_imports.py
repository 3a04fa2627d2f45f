"""A serving worker of each prediction service imports neither scikit-learn, scipy nor pandas.

Each service is trained by the real ``vigie train`` on its synthetic data (the same data as its
own tests, so the session's training cache is shared), which publishes the serving artifact
(``serving.joblib``: the model with its compiled parts). A fresh interpreter then does what a
gunicorn worker does (import :mod:`vigie.serve.app`, build the service with ``load_service``, bind
``load_current(lean=True)``), answers one request replayed from the synthetic training file, and
reports which heavy libraries it imported: none, ~110 MB of RSS per worker saved. Its answers
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services.energy_anomaly.synthetic import write_gas_data
from tests.services.gamma_classifier.synthetic import write_gamma_data
from tests.services.solar_flare.conftest import simulation
from tests.services.solar_flare.synthetic import write_solar_data
from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.serving import train_synthetic
from tests.support.synthetic import write_transformer_data
from vigie.contract.service import PredictionService
from vigie.models.store import CARD, SERVING_ARTIFACT, ModelStore
from vigie.settings import VigieSettings
from vigie_services import PREDICTION_SERVICES, load_service

HEAVY = ("sklearn", "scipy", "pandas")


@dataclass(frozen=True)
class Case:
    write_data: Callable[[Path], object]  # as the service's conftest trains it
    data_file: str  # the training file, replayed for the request
    batch: int  # new rows of the request


CASES: dict[str, Case] = {
    "solar-flare": Case(
        lambda d: write_solar_data(d, simulation()), "solar_flare/daily_train.csv", 5
    ),
    "gamma-classifier": Case(lambda d: write_gamma_data(d, n=3000, seed=0), "gamma/train.csv", 20),
    "transformer-temperature": Case(
        lambda d: write_transformer_data(d, hours=900), "transformer/ETTh1_train.csv", 3
    ),
    "turbine-nox": Case(
        lambda d: write_turbine_data(d, rows_per_year=500), "turbine_nox/train.csv", 5
    ),
    "energy-anomaly": Case(write_gas_data, "energy/gas_regional_daily_train.csv", 3),
}

# What a gunicorn worker does (vigie.serve.app: app_for, Runtime.load_model), then one predict.
WORKER = """
import json, sys
from pathlib import Path

import vigie.serve.app  # noqa: F401
from vigie.models.store import ModelStore
from vigie.settings import VigieSettings
from vigie_services import load_service

name, models, request = sys.argv[1:4]
service = load_service(name)(VigieSettings())
loaded = ModelStore(Path(models)).load_current(name, lean=True)
service.bind(loaded)
req = json.loads(Path(request).read_text())
measurements = [service.Measurement.model_validate(m) for m in req["measurements"]]
scored = service.predict(req["asset_id"], measurements)
print(json.dumps({
    "artifact": loaded.path.name,
    "compiled": sorted(loaded.compiled),
    "heavy": sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "pandas"}),
    "bodies": json.dumps([s.body for s in scored], default=str, sort_keys=True),
}))
"""


def test_every_prediction_service_is_covered() -> None:
    assert set(CASES) == set(PREDICTION_SERVICES)


def _trained(root: Path, name: str) -> Path:
    return train_synthetic(root, name, CASES[name].write_data)


def _request(service: PredictionService[Any], root: Path, name: str) -> dict[str, Any]:
    """The first request ``vigie replay`` would send for the synthetic training file (without
    analyser values, which would need the correction state in Redis)."""
    case = CASES[name]
    first = next(iter(service.replay_requests(root / "data" / case.data_file, None, case.batch)))
    drop = {"NOX", "CO"}
    return {
        "asset_id": first.asset_id,
        "measurements": [{k: v for k, v in m.items() if k not in drop} for m in first.measurements],
    }


def _bodies(service: PredictionService[Any], request: dict[str, Any]) -> str:
    measurements = [service.Measurement.model_validate(m) for m in request["measurements"]]
    scored = service.predict(request["asset_id"], measurements)
    return json.dumps([s.body for s in scored], default=str, sort_keys=True)


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


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_serving_worker_imports_no_sklearn_scipy_or_pandas(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp(f"lean-{name}")
    models = _trained(root, name)
    store = ModelStore(models)
    card = store.read_card(name, store.current_version(name))
    assert card.compiled is not None
    refused = {p.name: p.reason for p in card.compiled.parts if p.file is None}
    assert not refused, f"{name}: parts not compiled on the synthetic data: {refused}"
    assert card.compiled.serving is not None and card.compiled.serving.file == SERVING_ARTIFACT

    reference = load_service(name)(VigieSettings(asset_config=None))
    reference.bind(store.load_current(name))  # model.joblib with the same compiled parts
    request = _request(reference, root, name)

    worker = _worker(name, models, request, root)
    assert worker["artifact"] == SERVING_ARTIFACT  # not the joblib fallback
    assert worker["compiled"] == sorted(p.name for p in card.compiled.parts)
    assert worker["heavy"] == [], f"{name}: a serving worker imported {worker['heavy']}"
    assert worker["bodies"] == _bodies(reference, request)


@pytest.mark.parametrize("name", sorted(CASES))
def test_without_a_compiled_form_the_joblib_model_serves(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp(f"joblib-{name}")
    trained = _trained(root, name)
    models = root / "old-card"
    shutil.copytree(trained / name, models / name, symlinks=True)
    store = ModelStore(models)
    folder = store.service_dir(name) / store.current_version(name)
    card = json.loads((folder / CARD).read_text())
    card.pop("compiled")  # a card written before compiled inference
    (folder / CARD).write_text(json.dumps(card))

    reference = load_service(name)(VigieSettings(asset_config=None))
    reference.bind(store.load_current(name))
    request = _request(reference, root, name)

    worker = _worker(name, models, request, root)
    assert worker["artifact"] == "model.joblib" and worker["compiled"] == []
    assert "sklearn" in worker["heavy"]  # unpickling the estimators imported it
    assert worker["bodies"] == _bodies(reference, request)
