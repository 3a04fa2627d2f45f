"""What serves each part of a loaded model: its compiled form or its joblib estimator, and why.

:class:`~vigie.models.store.ModelStore` verifies a card's compiled files (sha256) and hands their
bytes here; :func:`compiled_predictors` builds the ONNX Runtime predictor of each and words the
ONE line the store logs at load time: which parts run compiled, and why the joblib estimator
serves any other (refused at training, ``onnxruntime`` not installed, a session that cannot be
built). Nothing here refuses a model: an integrity failure was raised before.
"""

from __future__ import annotations

import importlib.util

from vigie.models.card import ModelCard
from vigie.models.compiled import CompiledPredictor

NO_COMPILED_FORM = "no compiled form in the card"


def compiled_predictors(
    card: ModelCard, files: dict[str, bytes]
) -> tuple[dict[str, CompiledPredictor], str, bool]:
    """ONNX Runtime predictors of the verified files; the load-time log line (what serves,
    and why the joblib estimator serves a part); whether every part is compiled."""
    if card.compiled is None or not card.compiled.parts:
        return {}, f"predictions use the joblib model: {NO_COMPILED_FORM}", False
    parts = card.compiled.parts
    why: dict[str, str] = {p.name: f"refused at training: {p.reason}" for p in parts if not p.file}
    if files and importlib.util.find_spec("onnxruntime") is None:
        why.update(dict.fromkeys(files, "onnxruntime not installed"))
        files = {}
    predictors: dict[str, CompiledPredictor] = {}
    for part in parts:
        if part.name in files:
            try:
                predictors[part.name] = CompiledPredictor(
                    part.name, files[part.name], part.method, part.n_features
                )
            except Exception as exc:  # an onnxruntime that cannot run it: joblib serves
                why[part.name] = f"onnxruntime cannot load {part.file}: {exc}"
    fallback = "; ".join(f"{name}: {reason}" for name, reason in why.items())
    if not predictors:
        return {}, f"predictions use the joblib model ({fallback})", False
    used = ", ".join(
        f"{p.name} ({p.file}, {p.input_dtype or 'float32'} input, max |diff| "
        f"{max((p.max_abs_diff or {'': 0.0}).values()):.2g} <= {p.tolerance:g})"
        for p in parts
        if p.name in predictors
    )
    status = (
        f"predictions use the compiled form (ONNX Runtime, one thread, sha256 verified) for {used}"
    )
    if why:
        status += f"; the joblib estimator for {fallback}"
    return predictors, status, not why
