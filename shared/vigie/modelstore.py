"""Versioned model artifacts and their cards (design.md section 6).

Layout: ``<models dir>/<service>/<version>/model.joblib`` + ``card.json``, and
``<models dir>/<service>/current`` naming the version in service.

A joblib file is code (unpickling runs it), so :meth:`ModelStore.load_current` hashes the artifact
*before* unpickling and refuses it unless the sha256 matches the one recorded in its card.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from pydantic import BaseModel, ConfigDict

ARTIFACT = "model.joblib"
CARD = "card.json"
CURRENT = "current"


class ModelLoadError(Exception):
    """The model in service cannot be used; the message says why and what to do."""


class ModelIntegrityError(ModelLoadError):
    """The artifact's bytes are not the ones its card vouches for."""


class Feature(BaseModel):
    name: str
    unit: str


class DataFile(BaseModel):
    path: str
    sha256: str
    rows: int
    time_range: dict[str, str] | None = None


class Artifact(BaseModel):
    file: str
    sha256: str
    bytes: int


class ModelCard(BaseModel):
    """What a model is, what it was trained on and how good it was; extra keys are allowed."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    service: str
    version: str
    created_at: str
    libraries: dict[str, str]
    training_data: list[DataFile]
    features: list[Feature]
    targets: list[Feature]
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    hyperparameters: dict[str, Any] = {}
    validation: dict[str, Any] = {}
    training_time_s: float
    artifact: Artifact


@dataclass(frozen=True)
class LoadedModel:
    card: ModelCard
    model: Any
    path: Path

    @property
    def version(self) -> str:
        return self.card.version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


class ModelStore:
    """Reads and writes the versioned models of every service under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def service_dir(self, service: str) -> Path:
        return self.root / service

    def current_version(self, service: str) -> str:
        pointer = self.service_dir(service) / CURRENT
        try:
            version = pointer.read_text().strip()
        except FileNotFoundError:
            raise ModelLoadError(
                f"no model in service for {service}: {pointer} is missing "
                f"(run `vigie train {service}`)"
            ) from None
        if not version or "/" in version or version.startswith("."):
            raise ModelLoadError(f"{pointer} names an invalid version {version!r}")
        return version

    def has_current(self, service: str) -> bool:
        try:
            self.read_card(service, self.current_version(service))
        except ModelLoadError:
            return False
        return True

    def read_card(self, service: str, version: str) -> ModelCard:
        card_path = self.service_dir(service) / version / CARD
        try:
            card = ModelCard.model_validate_json(card_path.read_bytes())
        except FileNotFoundError:
            raise ModelLoadError(f"model card {card_path} is missing") from None
        except ValueError as exc:
            raise ModelLoadError(f"model card {card_path} is invalid: {exc}") from None
        if card.service != service or card.version != version:
            raise ModelLoadError(
                f"model card {card_path} is for {card.service}/{card.version}, "
                f"not {service}/{version}"
            )
        return card

    def load_current(self, service: str) -> LoadedModel:
        """Load the model in service, verifying its sha256 against its card before unpickling."""
        version = self.current_version(service)
        card = self.read_card(service, version)
        path = self.service_dir(service) / version / card.artifact.file
        if not path.is_file():
            raise ModelLoadError(f"model artifact {path} is missing")
        actual = sha256_file(path)
        if actual != card.artifact.sha256:
            raise ModelIntegrityError(
                f"refusing to load {path}: its sha256 is {actual} but its model card says "
                f"{card.artifact.sha256}; the file was modified or replaced, so it is not "
                f"unpickled (retrain with `vigie train {service}` or restore the artifact)"
            )
        return LoadedModel(card=card, model=joblib.load(path), path=path)

    def publish(
        self,
        service: str,
        model: Any,
        card_fields: dict[str, Any],
        *,
        now: datetime | None = None,
    ) -> LoadedModel:
        """Write a new version (artifact + card) and make it current, atomically.

        ``card_fields`` holds everything the card needs except what this method fills in:
        service, version, created_at, libraries and artifact.
        """
        service_dir = self.service_dir(service)
        service_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=service_dir))
        try:
            artifact = staging / ARTIFACT
            joblib.dump(model, artifact, compress=3)
            sha = sha256_file(artifact)
            now = now or datetime.now(UTC)
            version = f"{now:%Y-%m-%dT%H-%M-%SZ}-{sha[:6]}"
            card = ModelCard.model_validate(
                {
                    **card_fields,
                    "service": service,
                    "version": version,
                    "created_at": now.isoformat().replace("+00:00", "Z"),
                    "libraries": library_versions(),
                    "artifact": {
                        "file": ARTIFACT,
                        "sha256": sha,
                        "bytes": artifact.stat().st_size,
                    },
                }
            )
            (staging / CARD).write_text(json.dumps(card.model_dump(), indent=2) + "\n")
            final = service_dir / version
            if final.exists():
                # Same bytes published twice within a second: that version already holds them.
                shutil.rmtree(staging)
                card = self.read_card(service, version)
            else:
                staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._point_current(service, version)
        return LoadedModel(card=card, model=model, path=final / ARTIFACT)

    def _point_current(self, service: str, version: str) -> None:
        pointer = self.service_dir(service) / CURRENT
        tmp = pointer.with_name(f".{CURRENT}.{os.getpid()}")
        tmp.write_text(version + "\n")
        os.replace(tmp, pointer)  # atomic: a loader sees the old or the new version, never half
