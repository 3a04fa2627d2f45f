"""``vigie train gamma-classifier``: read ``gamma/train.csv``, fit (:func:`.fitting.fit`),
compile the estimator, and state the model card (the runtime adds ``title`` and
``training_time_s``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigie.contract.service import Progress, TrainedModel
from vigie.models.training import data_files, describe_file
from vigie_services.gamma_classifier.classifier import compiled_parts
from vigie_services.gamma_classifier.data import TRAINING_FILE, load_events
from vigie_services.gamma_classifier.features import INPUTS
from vigie_services.gamma_classifier.fitting import fit
from vigie_services.gamma_classifier.rules import DEFAULT_ALERTE_SIGMA, DEFAULT_CRITIQUE_SIGMA

SIGNIFICANCE = (
    "Li & Ma (1983) eq. 17, N_on = events classified gamma, N_off = events classified hadron, "
    "alpha = f / (1 - f), f = hadron_fpr of the cut"
)


def train(data_dir: Path, target: str, progress: Progress) -> TrainedModel:
    """The fitted :class:`~.classifier.GammaModel` and its card; ``target`` names the observed
    quantity (the service's feedback target)."""
    from vigie.models.compile import compile_parts  # training only: not in workers

    (path,) = data_files(data_dir, TRAINING_FILE)
    progress(f"reading {path}")
    values, y = load_events(path)
    result = fit(values, y, progress)
    bundle = compile_parts(compiled_parts(result.model, result.check_rows), progress)
    gammas = int(y.sum())
    card: dict[str, Any] = {
        "training_data": [describe_file(path, len(y))],
        "class_counts": {"gamma": gammas, "hadron": int(len(y) - gammas)},
        "inputs": [{"name": n, "unit": u, "description": d} for n, u, d in INPUTS],
        "features": result.features,
        "targets": [{"name": target, "unit": "P(gamma); observed 1 gamma, 0 hadron"}],
        "positive_class": "gamma (class g)",
        "metrics": result.metrics,
        "baselines": result.baselines,
        "validation": result.validation,
        "thresholds": {
            **result.thresholds,
            "levels": {
                "unit": "sigma",
                "alerte_sigma": DEFAULT_ALERTE_SIGMA,
                "critique_sigma": DEFAULT_CRITIQUE_SIGMA,
                "significance": SIGNIFICANCE,
            },
        },
        "hyperparameters": result.hyperparameters,
        "compiled": bundle,
    }
    return TrainedModel(model=result.model, card=card)
