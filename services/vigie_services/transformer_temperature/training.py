"""Training of the transformer-temperature model and the card it is published with.

Candidates
----------
Two families are compared by :func:`fit` (one estimator per horizon, both on the scaled change
of :mod:`.features`): a ``Ridge`` on standardised features and a
``HistGradientBoostingRegressor`` with absolute-error loss (the service is judged on MAE). The
one with the lower validation MAE, averaged over horizons and assets, is kept and refitted on all
the data.

Validation
----------
Time ordered, per asset: the last 20 % of the rows form the validation slice; the training slice
ends ``GAP_HOURS`` (24 h) before it, so no training target falls within 24 h of validation data.
Validation origins only use rows of the validation slice, i.e. the slice is scored exactly as
:func:`~.evaluation.evaluate` would score it.

Thresholds
----------
Default level thresholds per asset come from the OT distribution of the rows given to
:func:`fit` for that asset (the final model's training data): ``alerte_c`` = 99th percentile,
``critique_c`` = 99.9th percentile, both rounded to the nearest 0.5 °C (``critique_c`` is kept at
least 0.5 °C above ``alerte_c``).

scikit-learn and pandas are imported when training runs, never at import (see
:mod:`.forecasting`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigie.contract.service import TrainedModel
from vigie.models.training import data_files, describe_file
from vigie_services.transformer_temperature.data import load_series, values_of
from vigie_services.transformer_temperature.evaluation import scores
from vigie_services.transformer_temperature.features import (
    FEATURES,
    HISTORY_HOURS,
    HORIZONS,
    OT_INDEX,
    FloatArray,
    features_and_scale,
    forecast_origins,
    targets,
)
from vigie_services.transformer_temperature.forecasting import (
    COMPILED_TOLERANCE,
    DeltaForecaster,
    single_threaded,
)

# vigie.models.compile (onnx, skl2onnx) is imported where training compiles: the service module
# imports this one, and a serving worker must not load the converters.
if TYPE_CHECKING:
    import pandas as pd

    from vigie.models.compile import Part

VALIDATION_FRACTION = 0.2
GAP_HOURS = 24
#: the training files under the data directory, by asset
TRAINING_FILES = {
    "ETTh1": "transformer/ETTh1_train.csv",
    "ETTh2": "transformer/ETTh2_train.csv",
}
THRESHOLD_RULE = (
    "per asset: CRITIQUE when a horizon's forecast >= critique_c, ALERTE when >= alerte_c; "
    "defaults from the asset's training OT distribution (see the training module); "
    "VIGIE_ASSET_CONFIG overrides"
)


@dataclass
class TrainingResult:
    """Everything :func:`fit` produces; ``model`` is what :func:`~.forecasting.forecast` needs."""

    model: object
    metrics: dict[str, dict[str, dict[str, float]]]
    validation: dict[str, object]
    thresholds: dict[str, dict[str, float]]
    features: list[dict[str, str]]
    hyperparameters: dict[str, object]
    check_rows: FloatArray  # features of the validation origins, to check the compiled form on


def _candidates() -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        # Squared loss on standardised features; alpha barely matters here (1 vs 100 within 0.1 %).
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=100.0)),
        # Absolute-error loss because the service is judged on MAE and OT has spikes.
        # early_stopping off: its internal split is random, which leaks on time series and
        # makes training non-deterministic.
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            loss="absolute_error",
            learning_rate=0.05,
            max_iter=200,
            max_leaf_nodes=31,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
    }


def _describe(template: Any) -> dict[str, object]:
    """JSON-friendly description of a candidate: class names and the final estimator's params."""
    steps = [step for _, step in template.steps] if hasattr(template, "steps") else [template]
    return {"steps": [type(step).__name__ for step in steps], "params": steps[-1].get_params()}


def _train(family: str, template: Any, features: FloatArray, scaled: FloatArray) -> DeltaForecaster:
    from sklearn.base import clone

    with single_threaded():
        estimators = [clone(template).fit(features, scaled[:, j]) for j in range(len(HORIZONS))]
    return DeltaForecaster(family=family, estimators=estimators)


def _training_set(parts: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Stacked features and scaled targets of all origins whose every horizon is known."""
    xs, ys = [], []
    for values in parts:
        features, scale = features_and_scale(values)
        scaled = targets(values) / scale[:, None]
        known = ~np.isnan(scaled).any(axis=1)
        xs.append(features[known])
        ys.append(scaled[known])
    return np.vstack(xs), np.vstack(ys)


def _thresholds(ot: FloatArray) -> dict[str, float]:
    alerte, critique = (round(float(np.percentile(ot, q)) * 2) / 2 for q in (99.0, 99.9))
    return {"alerte_c": alerte, "critique_c": max(critique, alerte + 0.5)}


def _split(name: str, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray, dict[str, object]]:
    """Time-ordered split: training rows, validation rows and their description."""
    values = values_of(frame)
    n = len(values)
    val_start = n - math.ceil(n * VALIDATION_FRACTION)
    train_end = val_start - GAP_HOURS
    need = HISTORY_HOURS + max(HORIZONS)
    if train_end < need or n - val_start < need:
        raise ValueError(
            f"{name}: {n} rows is too short for a time-ordered validation "
            f"(each slice needs at least {need} rows)"
        )
    index = frame.index
    info: dict[str, object] = {
        "train_start": str(index[0]),
        "train_end": str(index[train_end - 1]),
        "validation_start": str(index[val_start]),
        "validation_end": str(index[-1]),
        "train_rows": train_end,
        "validation_rows": n - val_start,
        "train_origins": train_end - need + 1,
        "validation_origins": n - val_start - need + 1,
    }
    return values[:train_end], values[val_start:], info


def fit(
    series: dict[str, pd.DataFrame], progress: Callable[[str], None] = lambda _msg: None
) -> TrainingResult:
    """Train one global, asset-agnostic model on all assets (frames from
    :func:`~.data.load_series`).

    Each candidate is fitted on the training slices of all assets and scored per asset on its
    validation slice; the candidate with the lowest MAE averaged over horizons and assets is
    refitted on the full data of all assets. Reported metrics come from the validation fit.
    """
    if not series:
        raise ValueError("fit() needs at least one asset")
    splits = {name: _split(name, frame) for name, frame in series.items()}
    for name, (_, _, info) in splits.items():
        progress(
            f"{name}: train {info['train_start']} -> {info['train_end']} "
            f"({info['train_rows']} rows), validation {info['validation_start']} -> "
            f"{info['validation_end']} ({info['validation_rows']} rows)"
        )
    train_x, train_y = _training_set([train for train, _, _ in splits.values()])

    candidates: dict[str, dict[str, object]] = {}
    mean_mae: dict[str, float] = {}
    metrics_by_candidate: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for family, template in _candidates().items():
        progress(f"fitting {family} on {len(train_x)} training origins")
        model = _train(family, template, train_x, train_y)
        metrics = {name: scores(model, val) for name, (_, val, _) in splits.items()}
        mae = float(np.mean([m["mae"] for asset in metrics.values() for m in asset.values()]))
        metrics_by_candidate[family] = metrics
        mean_mae[family] = mae
        candidates[family] = {
            "estimator": _describe(template),
            "validation_mae": mae,
            "validation_mae_by_asset": {
                name: {h: m["mae"] for h, m in asset.items()} for name, asset in metrics.items()
            },
        }
        progress(f"{family}: validation MAE {mae:.3f} °C (mean over horizons and assets)")

    chosen = min(mean_mae, key=mean_mae.__getitem__)
    metrics = metrics_by_candidate[chosen]
    for name, asset in metrics.items():
        worse = [h for h, m in asset.items() if m["mae"] >= m["persistence_mae"]]
        if worse:
            progress(f"warning: {chosen} does not beat persistence for {name} at {worse}")

    full_x, full_y = _training_set([values_of(frame) for frame in series.values()])
    progress(f"refitting {chosen} on all data ({len(full_x)} origins)")
    final = _train(chosen, _candidates()[chosen], full_x, full_y)

    validation: dict[str, object] = {
        "method": "time-ordered holdout per asset: last rows validate, training ends a gap before",
        "validation_fraction": VALIDATION_FRACTION,
        "gap_hours": GAP_HOURS,
        "assets": {name: info for name, (_, _, info) in splits.items()},
    }
    hyperparameters: dict[str, object] = {
        "model_family": chosen,
        "chosen_candidate": chosen,
        "estimator": candidates[chosen]["estimator"],
        "target": "(OT(t+h) - OT(t)) / ot_scale, one estimator per horizon",
        "history_hours": HISTORY_HOURS,
        "horizons_hours": list(HORIZONS),
        "candidates": candidates,
    }
    return TrainingResult(
        model=final,
        metrics=metrics,
        validation=validation,
        thresholds={name: _thresholds(values_of(f)[:, OT_INDEX]) for name, f in series.items()},
        features=[dict(f) for f in FEATURES],
        hyperparameters=hyperparameters,
        check_rows=np.vstack([forecast_origins(val) for _, val, _ in splits.values()]),
    )


def compiled_parts(model: object, check_rows: FloatArray) -> list[Part]:
    """What :func:`vigie.models.compile.compile_parts` compiles: every horizon's estimator of
    ``model`` (``fit(...).model``), checked on ``check_rows`` (the validation origins' features,
    :attr:`TrainingResult.check_rows`)."""
    from vigie.models.compile import Part

    if not isinstance(model, DeltaForecaster):
        raise TypeError(f"expected a DeltaForecaster from fit(), got {type(model).__name__}")
    unit = "(OT(t+h) - OT(t)) / ot_scale"
    return [
        Part(name, est, check_rows, COMPILED_TOLERANCE, unit)
        for name, est in model.compiled_parts().items()
    ]


def train(data_dir: Path, progress: Callable[[str], None]) -> TrainedModel:
    """``vigie train``: fit on the ETT training files of the data directory, compile the
    horizons, and state the card fields (design.md section 6)."""
    from vigie.models.compile import compile_parts

    files = dict(zip(TRAINING_FILES, data_files(data_dir, *TRAINING_FILES.values()), strict=True))
    series = {}
    for asset, path in files.items():
        progress(f"reading {path}")
        series[asset] = load_series(path)
    result = fit(series, progress)
    bundle = compile_parts(compiled_parts(result.model, result.check_rows), progress)
    card: dict[str, Any] = {
        "training_data": [
            describe_file(path, len(s), s.index[0], s.index[-1])
            for path, s in zip(files.values(), series.values(), strict=True)
        ],
        "features": result.features,
        "targets": [{"name": f"OT(t+{h}h)", "unit": "°C"} for h in HORIZONS],
        "history_hours": HISTORY_HOURS,
        "horizons": [f"h{h}" for h in HORIZONS],
        "metrics": result.metrics,
        "baselines": {"persistence": _persistence_baselines(result.metrics)},
        "validation": result.validation,
        "thresholds": {"unit": "°C", "rule": THRESHOLD_RULE, "per_asset": result.thresholds},
        "hyperparameters": result.hyperparameters,
        "compiled": bundle,
    }
    return TrainedModel(model=result.model, card=card)


def _persistence_baselines(
    metrics: dict[str, dict[str, dict[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """The persistence scores of :func:`fit`'s metrics, per asset and horizon, unprefixed."""
    return {
        asset: {
            h: {
                k.removeprefix("persistence_"): v
                for k, v in m.items()
                if k.startswith("persistence_")
            }
            for h, m in per_h.items()
        }
        for asset, per_h in metrics.items()
    }
