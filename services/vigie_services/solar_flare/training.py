"""``vigie train solar-flare``: read ``solar_flare/daily_train.csv``, fit (:func:`.fitting.fit`),
compile the classifiers, and state the model card (the runtime adds ``title`` and
``training_time_s``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigie.contract.service import Progress, TrainedModel
from vigie.models.training import data_files, describe_file
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.fitting import fit
from vigie_services.solar_flare.forecast import FEEDBACK_HORIZON, UNIT
from vigie_services.solar_flare.modeling import KEYS, compiled_parts

DATA_FILE = str(Path("solar_flare") / "daily_train.csv")
RULE = (
    "CRITIQUE when P(X) >= critique_probability_x (max-HSS threshold of P(X) on validation), "
    "else ALERTE when P(>=M) >= alerte_probability_m_or_above (max-TSS threshold of P(>=M) on "
    "validation), else NORMAL; operating_points are the thresholds TSS/HSS are computed at "
    "(>=C: max TSS); VIGIE_ASSET_CONFIG overrides per asset"
)


def train(data_dir: Path, target: str, progress: Progress) -> TrainedModel:
    """The fitted :class:`~.modeling.FlareForecaster` and its card; ``target`` names the
    observed quantity (the service's feedback target)."""
    from vigie.models.compile import compile_parts  # training only: workers import no converter

    (path,) = data_files(data_dir, DATA_FILE)
    progress(f"reading {path}")
    table = sm.load_table(path)
    result = fit(table, progress)
    bundle = compile_parts(compiled_parts(result.model, result.check_rows), progress)
    thresholds = result.model.thresholds
    metrics = {
        key: {
            **result.metrics[key],
            "persistence_tss": result.baselines[key]["persistence"]["tss"],
            "persistence": result.baselines[key]["persistence"],
            "climatology": result.baselines[key]["climatology"],
        }
        for key in KEYS
    }
    first, last = (f"{table['date'].iloc[i]:%Y-%m-%d}" for i in (0, -1))
    card: dict[str, Any] = {
        "training_data": [describe_file(path, len(table), first, last)],
        "inputs": [
            {"name": c.name, "unit": c.unit, "model_input": c.model_input}
            for c in sm.SUMMARY_COLUMNS
        ],
        "features": [dict(f) for f in ft.FEATURES],
        "targets": [
            {"name": sm.TARGETS[k], "unit": f"probability of {sm.TARGET_LABELS[k]} on d+1"}
            for k in KEYS
        ],
        "metrics": metrics,
        "baselines": {
            name: {key: result.baselines[key][name] for key in KEYS}
            for name in ("persistence", "climatology")
        },
        "candidates": result.candidates,
        "climatology": {k: round(v, 6) for k, v in result.model.climatology.items()},
        "validation": result.validation,
        "thresholds": {
            "unit": UNIT,
            "alerte_probability_m_or_above": thresholds["m"],
            "critique_probability_x": thresholds["x"],
            "operating_points": thresholds,
            "rule": RULE,
        },
        "feedback": {
            "target": target,
            "horizon": FEEDBACK_HORIZON,
            "live_mae": "mean |outcome (0/1) - P(>=M)| over the observed days",
        },
        "hyperparameters": result.hyperparameters,
        "compiled": bundle,
    }
    return TrainedModel(model=result.model, card=card)
