"""ModelStore: versioned artifacts, cards, and the sha256 check that runs before unpickling."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import joblib
import pytest

from vigie.models.card import ModelCard
from vigie.models.store import (
    ModelIntegrityError,
    ModelLoadError,
    ModelStore,
)

SERVICE = "demo"
VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z-[0-9a-f]{6}$")


def card_fields() -> dict[str, Any]:
    return {
        "training_data": [{"path": "data/x.csv", "sha256": "ab" * 32, "rows": 10}],
        "features": [{"name": "load", "unit": "%"}],
        "targets": [{"name": "temp", "unit": "degC"}],
        "metrics": {"mae": 1.25},
        "thresholds": {"alerte": 90.0},
        "training_time_s": 0.5,
    }


class SideEffect:
    """Unpickling this creates ``path``: an observable stand-in for malicious pickle code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def test_publish_then_load_round_trips_model_and_card(store: ModelStore) -> None:
    model = {"weights": [1.5, -2.0, 3.25], "name": "linear"}
    published = store.publish(SERVICE, model, card_fields())

    version = published.version
    assert VERSION_RE.match(version), version
    artifact = store.root / SERVICE / version / "model.joblib"
    assert published.path == artifact
    assert (store.root / SERVICE / "current").read_text().strip() == version
    assert store.current_version(SERVICE) == version
    # The version's suffix is the start of the artifact's hash.
    assert version.endswith(sha256(artifact)[:6])

    loaded = store.load_current(SERVICE)
    assert loaded.model == model
    assert loaded.version == version
    assert loaded.path == artifact
    card = loaded.card
    assert card == published.card
    assert card.service == SERVICE
    assert card.artifact.sha256 == sha256(artifact)
    assert card.artifact.bytes == artifact.stat().st_size
    assert card.artifact.file == "model.joblib"
    assert {"python", "scikit-learn", "numpy", "joblib"} <= set(card.libraries)
    assert card.metrics == {"mae": 1.25}
    assert card.created_at.endswith("Z")

    # The card on disk is valid JSON and says the same thing.
    on_disk = json.loads((store.root / SERVICE / version / "card.json").read_text())
    assert ModelCard.model_validate(on_disk) == card
    # No staging directory is left behind.
    assert not [p for p in (store.root / SERVICE).iterdir() if p.name.startswith(".")]


def test_publishing_again_moves_current_to_the_new_version(store: ModelStore) -> None:
    first = store.publish(SERVICE, {"v": 1}, card_fields())
    second = store.publish(SERVICE, {"v": 2}, card_fields())
    assert first.version != second.version
    assert store.current_version(SERVICE) == second.version
    assert store.load_current(SERVICE).model == {"v": 2}
    # The old version stays on disk (rollback is possible).
    assert (store.root / SERVICE / first.version / "model.joblib").is_file()


@pytest.mark.parametrize("tamper", ["flip_byte", "append_byte"])
def test_tampered_artifact_is_refused_with_both_hashes(store: ModelStore, tamper: str) -> None:
    published = store.publish(SERVICE, {"weights": list(range(50))}, card_fields())
    artifact = published.path
    expected = published.card.artifact.sha256
    data = bytearray(artifact.read_bytes())
    if tamper == "flip_byte":
        data[len(data) // 2] ^= 0x01
    else:
        data += b"\x00"
    artifact.write_bytes(bytes(data))
    actual = sha256(artifact)
    assert actual != expected

    with pytest.raises(ModelIntegrityError) as excinfo:
        store.load_current(SERVICE)
    message = str(excinfo.value)
    assert "refusing" in message
    assert expected in message
    assert actual in message
    assert isinstance(excinfo.value, ModelLoadError)  # callers catching the base still see it


def test_tampered_artifact_is_never_unpickled(store: ModelStore, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    store.publish(SERVICE, {"benign": True}, card_fields())
    artifact = store.root / SERVICE / store.current_version(SERVICE) / "model.joblib"

    # An attacker replaces the artifact with a valid joblib file whose unpickling runs code.
    joblib.dump(SideEffect(marker), artifact, compress=3)

    with pytest.raises(ModelIntegrityError):
        store.load_current(SERVICE)
    assert not marker.exists(), "the tampered artifact was unpickled"

    # Control: the replacement really would run code if it were unpickled, so the assertion
    # above is meaningful.
    joblib.load(artifact)
    assert marker.exists()


def test_side_effect_object_published_legitimately_does_run_on_load(
    store: ModelStore, tmp_path: Path
) -> None:
    # The other half of the proof: an untampered artifact is unpickled (the check is not
    # simply refusing everything).
    marker = tmp_path / "loaded"
    store.publish(SERVICE, SideEffect(marker), card_fields())
    assert not marker.exists()  # dumping does not run the side effect
    store.load_current(SERVICE)
    assert marker.exists()


def test_missing_current_says_to_run_vigie_train(store: ModelStore) -> None:
    assert not store.has_current(SERVICE)
    with pytest.raises(ModelLoadError, match=r"vigie train demo"):
        store.load_current(SERVICE)


def test_card_for_another_service_is_refused(store: ModelStore) -> None:
    published = store.publish(SERVICE, {"v": 1}, card_fields())
    # Copy demo's version under another service and point that service at it.
    other_dir = store.root / "other" / published.version
    other_dir.mkdir(parents=True)
    for name in ("model.joblib", "card.json"):
        (other_dir / name).write_bytes((published.path.parent / name).read_bytes())
    (store.root / "other" / "current").write_text(published.version + "\n")

    with pytest.raises(ModelLoadError, match=r"is for demo/") as excinfo:
        store.load_current("other")
    assert not isinstance(excinfo.value, ModelIntegrityError)
    assert not store.has_current("other")
    assert store.has_current(SERVICE)


@pytest.mark.parametrize("pointer", ["../x", "..", ".hidden", "a/b", "", "   \n"])
def test_current_naming_an_invalid_version_is_rejected(store: ModelStore, pointer: str) -> None:
    service_dir = store.root / SERVICE
    service_dir.mkdir(parents=True)
    (service_dir / "current").write_text(pointer)
    with pytest.raises(ModelLoadError, match="invalid version"):
        store.current_version(SERVICE)
    assert not store.has_current(SERVICE)


def test_current_escaping_the_service_dir_does_not_load_a_neighbour(store: ModelStore) -> None:
    # A valid model of service "x" sits next to demo; demo's current says "../x/<version>".
    published = store.publish("x", {"v": "x"}, card_fields())
    (store.root / SERVICE).mkdir()
    (store.root / SERVICE / "current").write_text(f"../x/{published.version}")
    with pytest.raises(ModelLoadError):
        store.load_current(SERVICE)


def test_has_current(store: ModelStore) -> None:
    assert not store.has_current(SERVICE)
    published = store.publish(SERVICE, {"v": 1}, card_fields())
    assert store.has_current(SERVICE)
    # A card that no longer parses means there is no usable model.
    (published.path.parent / "card.json").write_text("{not json")
    assert not store.has_current(SERVICE)
    with pytest.raises(ModelLoadError, match="invalid"):
        store.load_current(SERVICE)


def test_missing_artifact_is_a_load_error(store: ModelStore) -> None:
    published = store.publish(SERVICE, {"v": 1}, card_fields())
    published.path.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        store.load_current(SERVICE)


def test_publishing_the_same_bytes_twice_in_a_second_reuses_the_version(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = ModelStore(tmp_path)
    at = datetime(2026, 11, 21, 20, 0, 0, tzinfo=UTC)
    first = store.publish("svc", {"w": [1, 2, 3]}, card_fields(), now=at)
    second = store.publish("svc", {"w": [1, 2, 3]}, card_fields(), now=at)
    assert second.version == first.version
    assert store.load_current("svc").card.artifact.sha256 == first.card.artifact.sha256
    assert not list(store.service_dir("svc").glob(".staging-*"))
