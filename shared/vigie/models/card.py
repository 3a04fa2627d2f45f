"""The model card (design.md section 6): ``card.json`` beside each version's artifact.

What a model is, what it was trained on, how good it was and which files make it, each with its
sha256 (:class:`Artifact`), so that :class:`~vigie.models.store.ModelStore` can refuse files that
are not the ones the card vouches for before anything is unpickled.

Compiled form (:mod:`vigie.models.compiled`, built by :mod:`vigie.models.compile`)
------------------------------------------------------------------------------
A model may also have ONNX files next to its artifact, built at training time from its inner
estimators: ``model.onnx`` (one part) or ``model.<part>.onnx`` (several, e.g. per horizon). The
card lists them under ``compiled`` (:class:`Compiled`): per part the file, its sha256 and size,
the largest difference from the joblib estimator measured at training and the tolerance, or why
the part was not published. A card without ``compiled`` (older models) still loads: the service
uses the joblib model. When every part is compiled, ``compiled.serving`` names the serving
artifact (the model with slots for its compiled parts, see :mod:`vigie.models.store`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


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


class CompiledPart(BaseModel):
    """One compiled inner estimator (see :mod:`vigie.models.compile`); ``file`` is None when the
    part was not published (``reason`` says why) and the joblib estimator serves it."""

    model_config = ConfigDict(extra="allow")

    name: str
    method: str  # predict / predict_proba / score_samples
    estimator: str  # class name of the estimator it was compiled from
    n_features: int
    file: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    max_abs_diff: dict[str, float] | None = None  # per output, on the check rows
    tolerance: float
    unit: str = ""
    rows_checked: int
    convert_s: float = 0.0
    input_dtype: str | None = None  # what the graph reads: float32 or float64
    reason: str | None = None


class Compiled(BaseModel):
    """The card's ``compiled`` section."""

    model_config = ConfigDict(extra="allow")

    runtime: str = "onnxruntime"
    precision: str = "float32"
    libraries: dict[str, str] = {}
    build_time_s: float = 0.0
    parts: list[CompiledPart]
    # The model with slots for its compiled parts, when all are (see the module docstring).
    serving: Artifact | None = None


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
    compiled: Compiled | None = None  # absent from cards written before compiled inference
