"""What a compiled model publishes next to its joblib artifact, written by
:meth:`ModelStore.publish <vigie.models.store.ModelStore.publish>` into the version folder it
stages: one ONNX file per published part (:meth:`CompiledBundle.file_name`), the card's
``compiled`` section (:func:`write_compiled`) and, when every part is compiled, the serving
artifact (:func:`write_serving`: the model with a :class:`~vigie.models.compiled.CompiledSlot`
in place of each compiled estimator, which a serving worker loads without scikit-learn)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from vigie.models.compiled import CompiledSlot

PRECISION = "float32 (histogram gradient boosting in float64; see each part's input_dtype)"


@dataclass(frozen=True)
class CompiledPart:
    """What :func:`~vigie.models.compile.compile_parts` made of one part; ``onnx`` is None when
    refused (``reason`` says why)."""

    name: str
    method: str
    estimator: str
    n_features: int
    tolerance: float
    unit: str
    rows_checked: int
    convert_s: float
    input_dtype: str | None = None  # float32 / float64, what the graph reads
    onnx: bytes | None = field(default=None, repr=False)
    max_abs_diff: dict[str, float] | None = None
    reason: str | None = None

    @property
    def published(self) -> bool:
        return self.onnx is not None


@dataclass(frozen=True)
class CompiledBundle:
    """The compiled parts of one model, to be written next to its joblib artifact.

    A service puts it in its card fields under ``compiled``; :meth:`ModelStore.publish
    <vigie.models.store.ModelStore.publish>` writes the files and the card section."""

    parts: list[CompiledPart]
    libraries: dict[str, str]
    build_time_s: float

    def file_name(self, part: str) -> str:
        return "model.onnx" if len(self.parts) == 1 else f"model.{part}.onnx"


def library_versions() -> dict[str, str]:
    """The versions of the conversion and runtime libraries, for the card."""
    out = {}
    for name in ("skl2onnx", "onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_compiled(folder: Path, bundle: CompiledBundle) -> dict[str, Any]:
    """Write the published parts' ONNX files into ``folder``; the card's ``compiled`` section."""
    parts = []
    for part in bundle.parts:
        entry: dict[str, Any] = {
            "name": part.name,
            "method": part.method,
            "estimator": part.estimator,
            "n_features": part.n_features,
            "file": None,
            "sha256": None,
            "bytes": None,
            "max_abs_diff": part.max_abs_diff,
            "tolerance": part.tolerance,
            "unit": part.unit,
            "rows_checked": part.rows_checked,
            "convert_s": part.convert_s,
            "input_dtype": part.input_dtype,
            "reason": part.reason,
        }
        if part.onnx is not None:
            name = bundle.file_name(part.name)
            (folder / name).write_bytes(part.onnx)
            entry.update(
                file=name, sha256=hashlib.sha256(part.onnx).hexdigest(), bytes=len(part.onnx)
            )
        parts.append(entry)
    return {
        "runtime": "onnxruntime",
        "precision": PRECISION,
        "libraries": bundle.libraries,
        "build_time_s": bundle.build_time_s,
        "parts": parts,
    }


def write_serving(path: Path, model: Any, compiled: dict[str, Any]) -> dict[str, Any] | None:
    """Write the serving artifact to ``path`` when every part of ``compiled`` (the section
    :func:`write_compiled` returned) is published and the model has the ``with_compiled`` hook;
    its card entry, or None."""
    hook = getattr(model, "with_compiled", None)
    parts = compiled["parts"]
    if hook is None or not parts or any(p["file"] is None for p in parts):
        return None
    joblib.dump(hook({p["name"]: CompiledSlot(p["name"]) for p in parts}), path, compress=3)
    return {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size}
