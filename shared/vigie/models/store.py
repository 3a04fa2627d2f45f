"""Versioned model artifacts (design.md section 6): publishing them, loading the one in service.

Layout: ``<models dir>/<service>/<version>/model.joblib`` + ``card.json``
(:mod:`vigie.models.card`), and ``<models dir>/<service>/current`` naming the version in service.

A joblib file is code (unpickling runs it), so :meth:`ModelStore.load_current` hashes the artifact
*before* unpickling and refuses it unless the sha256 matches the one recorded in its card.

Serving artifact
----------------
When every part of a model is compiled (the card's ``compiled`` section, see
:mod:`vigie.models.card`), ``publish`` also writes ``serving.joblib``: the model with a
:class:`~vigie.models.compiled.CompiledSlot` in place of each compiled estimator (listed in the
card as ``compiled.serving`` with its sha256; :mod:`vigie.models.compile.bundle` writes it).
The runtime loads it (``load_current(lean=True)``) and fills the slots with the ONNX Runtime
predictors: a worker then holds neither the estimators' arrays nor, when the service's modules
import it lazily, scikit-learn itself (~150 MB of RSS per worker), nor any converter. Everything
else (``vigie evaluate``, the bench's reference) loads the joblib model.

Loading verifies each listed file like the artifact, before anything is unpickled. **A mismatch
(or a listed file that is missing) refuses the whole model** (:class:`ModelIntegrityError`, so
readyz answers 503 and the log says which file and both hashes): the files in the version folder
are not the ones the card vouches for, i.e. a tampered deployment, and serving the joblib model
would hide it. Whatever else prevents the compiled form (not in the card, refused at training,
``onnxruntime`` not installed, a session that cannot be built: :mod:`vigie.models.predictors`)
falls back to the joblib model with ONE log line at load time saying why;
:attr:`LoadedModel.compiled` then lacks those parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from vigie.models.card import ModelCard
from vigie.models.compiled import CompiledPredictor
from vigie.models.predictors import NO_COMPILED_FORM, compiled_predictors

log = logging.getLogger(__name__)

ARTIFACT = "model.joblib"
SERVING_ARTIFACT = "serving.joblib"
CARD = "card.json"
CURRENT = "current"


class ModelLoadError(Exception):
    """The model in service cannot be used; the message says why and what to do."""


class ModelIntegrityError(ModelLoadError):
    """The artifact's bytes are not the ones its card vouches for."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model. ``compiled`` maps part names to their ONNX Runtime predictors (empty
    when the joblib model serves alone); ``compiled_status`` is the load-time log line's why."""

    card: ModelCard
    model: Any
    path: Path
    compiled: Mapping[str, CompiledPredictor] = field(default_factory=dict)
    compiled_status: str = NO_COMPILED_FORM

    @property
    def version(self) -> str:
        return self.card.version

    def serving(self) -> LoadedModel:
        """A copy whose ``model`` has the compiled parts in place of the estimators they were
        built from (the model's ``with_compiled`` hook, see
        :class:`vigie.models.compiled.Compilable`); itself when nothing is compiled or the model
        has no hook. What services serve with."""
        hook = getattr(self.model, "with_compiled", None)
        if not self.compiled or hook is None:
            return self
        return replace(self, model=hook(self.compiled))


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

    def load_current(
        self, service: str, *, compiled: bool = True, lean: bool = False
    ) -> LoadedModel:
        """Load the model in service, verifying its sha256 (and those of its compiled files)
        against its card before unpickling; ``compiled=False`` skips building the ONNX Runtime
        sessions (the files are verified all the same). ``lean=True`` (what a serving worker
        asks) loads the serving artifact instead of the joblib model when the card has one and
        every part's session builds: ``model`` is then the served model, already compiled."""
        version = self.current_version(service)
        card = self.read_card(service, version)
        folder = self.service_dir(service) / version
        if lean and compiled:
            loaded = self._load_lean(service, folder, card)
            if loaded is not None:
                return loaded
        path = folder / card.artifact.file
        if not path.is_file():
            raise ModelLoadError(f"model artifact {path} is missing")
        actual = sha256_file(path)
        if actual != card.artifact.sha256:
            raise ModelIntegrityError(
                f"refusing to load {path}: its sha256 is {actual} but its model card says "
                f"{card.artifact.sha256}; the file was modified or replaced, so it is not "
                f"unpickled (retrain with `vigie train {service}` or restore the artifact)"
            )
        files = self._verify_compiled(service, folder, card)
        model = joblib.load(path)
        predictors: dict[str, CompiledPredictor] = {}
        status = "compiled form not loaded (compiled=False)"
        if compiled:
            predictors, status, complete = compiled_predictors(card, files)
            (log.info if complete else log.warning)("%s %s: %s", service, version, status)
        return LoadedModel(
            card=card, model=model, path=path, compiled=predictors, compiled_status=status
        )

    def _load_lean(self, service: str, folder: Path, card: ModelCard) -> LoadedModel | None:
        """The serving artifact with its slots filled; None (and one log line) when the card has
        none or a part cannot be served compiled, so the joblib model serves instead."""
        serving = card.compiled.serving if card.compiled else None
        if card.compiled is None or serving is None:
            return None
        path = folder / serving.file
        if Path(serving.file).name != serving.file or not path.is_file():
            raise ModelIntegrityError(
                f"refusing the serving artifact {path}: the model card lists it but it is "
                f"missing or misnamed; the model is not loaded (retrain with "
                f"`vigie train {service}` or restore the file)"
            )
        actual = sha256_file(path)
        if actual != serving.sha256:
            raise ModelIntegrityError(
                f"refusing to load {path}: its sha256 is {actual} but its model card says "
                f"{serving.sha256}; the file was modified or replaced, so it is not unpickled "
                f"(retrain with `vigie train {service}` or restore the file)"
            )
        files = self._verify_compiled(service, folder, card)
        predictors, status, complete = compiled_predictors(card, files)
        if not complete:
            log.warning("%s %s: serving artifact not used: %s", service, card.version, status)
            return None
        model = joblib.load(path).with_compiled(predictors)
        log.info("%s %s: %s; serving artifact %s", service, card.version, status, serving.file)
        return LoadedModel(
            card=card, model=model, path=path, compiled=predictors, compiled_status=status
        )

    def _verify_compiled(self, service: str, folder: Path, card: ModelCard) -> dict[str, bytes]:
        """The bytes of every published compiled file, each checked against the card."""
        out: dict[str, bytes] = {}
        for part in card.compiled.parts if card.compiled else []:
            if part.file is None:
                continue
            if Path(part.file).name != part.file or not part.file.endswith(".onnx"):
                raise ModelLoadError(f"model card of {folder}: invalid compiled file {part.file!r}")
            path = folder / part.file
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise ModelIntegrityError(
                    f"refusing the compiled form {path}: the file is missing but the model card "
                    f"lists it (sha256 {part.sha256}); the model is not loaded (retrain with "
                    f"`vigie train {service}` or restore the file)"
                ) from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != part.sha256:
                raise ModelIntegrityError(
                    f"refusing the compiled form {path}: its sha256 is {actual} but its model "
                    f"card says {part.sha256}; the file was modified or replaced, so the model "
                    f"is not loaded, neither compiled nor joblib (retrain with "
                    f"`vigie train {service}` or restore the file)"
                )
            out[part.name] = data
        return out

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
        service, version, created_at, libraries and artifact. Its ``compiled`` key, when it
        holds a :class:`~vigie.models.compile.CompiledBundle`, is written as the ONNX files of the
        parts it publishes plus the card's ``compiled`` section (with their sha256).
        """
        # Training only: a serving worker, which never publishes, imports no converter.
        from vigie.models.compile.bundle import CompiledBundle, write_compiled, write_serving

        card_fields = dict(card_fields)
        bundle = card_fields.pop("compiled", None)
        if bundle is not None and not isinstance(bundle, CompiledBundle):
            raise TypeError(f"card field 'compiled' must be a CompiledBundle, got {type(bundle)}")
        service_dir = self.service_dir(service)
        service_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=service_dir))
        try:
            artifact = staging / ARTIFACT
            joblib.dump(model, artifact, compress=3)
            sha = sha256_file(artifact)
            compiled = write_compiled(staging, bundle) if bundle is not None else None
            if compiled is not None:
                compiled["serving"] = write_serving(staging / SERVING_ARTIFACT, model, compiled)
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
                    "compiled": compiled,
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
