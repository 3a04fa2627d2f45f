"""Every service: a tampered artifact is refused (readyz 503, predict 503), never unpickled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.contract.conftest import Contract
from tests.shared.models.compiled_checks import assert_tampered_onnx_makes_readyz_503
from tests.support.serving import serve
from vigie.models.store import ModelStore

pytestmark = pytest.mark.integration


def test_card_is_served_and_names_what_is_loaded(contract: Contract) -> None:
    with contract.served.client() as client:
        card = client.get("/v1/model", headers=contract.served.headers()).json()
        ready = client.get("/readyz").json()
    assert card["service"] == contract.name
    assert card["version"] == ready["model_version"]
    assert len(card["artifact"]["sha256"]) == 64
    assert card["training_data"] and card["training_time_s"] >= 0 and card["title"]


def test_a_tampered_artifact_is_refused(contract: Contract, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(contract.models, models, symlinks=True)
    folder = models / contract.name / ModelStore(models).current_version(contract.name)
    for artifact in ("model.joblib", "serving.joblib"):
        path = folder / artifact
        if path.exists():
            path.write_bytes(path.read_bytes() + b"tampered")
    with serve(
        contract.name, tmp_path / "served", models, app_spec=contract.case.app_spec, expect=503
    ) as served:
        assert served.service is not None
        with served.client() as client:
            ready = client.get("/readyz")
            predicted = client.post("/v1/predict", json=contract.body(), headers=served.headers())
        log = served.service.log()
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "model_unavailable"
    assert predicted.status_code == 503
    assert "sha256" in ready.json()["error"]["message"] or "sha256" in log


def test_a_tampered_compiled_file_is_refused(contract: Contract, tmp_path: Path) -> None:
    """A modified ONNX file leaves the service unready, the log naming the file and both
    hashes (a service without compiled parts has nothing to tamper with)."""
    store = ModelStore(contract.models)
    card = store.read_card(contract.name, store.current_version(contract.name))
    if card.compiled is None or not any(p.file for p in card.compiled.parts):
        pytest.skip(f"{contract.name} has no compiled part")
    assert_tampered_onnx_makes_readyz_503(contract.models, contract.name, tmp_path, contract.body())
