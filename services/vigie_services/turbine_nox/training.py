"""Training and evaluation of the ``turbine-nox`` model: candidates, validation forward in time,
the offline replay of the online correction, ``vigie evaluate``'s metrics and the card.

Validation (:func:`fit`)
------------------------
Rows carry no timestamps but are in time order within each year (hourly, the lag-1
autocorrelation of AT is 0.99). The last year of the file is held out: candidates are trained on
the earlier years and scored on it statically and by :func:`replay`: the held-out year in row
order, each row's measured NOx/CO known to the corrector ``DELAY_ROWS`` = 24 rows later, starting
from an empty correction. The candidate with the best online R² (the corrected value is what the
service uses) is kept per target and refitted on all years.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigie.models.training import describe_file
from vigie_services.turbine_nox.corrector import correctors
from vigie_services.turbine_nox.data import load_frame
from vigie_services.turbine_nox.pems import (
    COMPILED_TOLERANCE,
    INPUT_SPEC,
    INPUTS,
    TARGETS,
    YEAR,
    FloatArray,
    PemsModel,
    single_threaded,
)

# pandas, scikit-learn and vigie.models.compile (the ONNX converters) are imported by the
# functions that need them: the service imports this module, and a serving worker must not load
# them (see vigie_services.turbine_nox.pems).
if TYPE_CHECKING:
    import pandas as pd

    from vigie.models.compile import Part

DELAY_ROWS = 24
UNIT = "mg/m3"


def _candidates() -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        # early_stopping off: its random internal split would leak across time and make
        # training non-deterministic.
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            learning_rate=0.05,
            max_iter=300,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
    }


def _describe(template: Any) -> dict[str, object]:
    steps = [step for _, step in template.steps] if hasattr(template, "steps") else [template]
    params = {k: v for k, v in steps[-1].get_params().items() if _jsonable(v)}
    return {"steps": [type(step).__name__ for step in steps], "params": params}


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _build(
    families: dict[str, str], frame: pd.DataFrame, templates: dict[str, Any] | None = None
) -> PemsModel:
    from sklearn.base import clone

    templates = templates or _candidates()
    x = frame[list(INPUTS)].to_numpy(dtype=np.float64)
    estimators = {}
    with single_threaded():
        for target, family in families.items():
            estimators[target] = clone(templates[family]).fit(x, frame[target].to_numpy())
    std = x.std(axis=0)
    model = PemsModel(
        families=dict(families),
        estimators=estimators,
        input_mean=x.mean(axis=0).tolist(),
        input_std=np.where(std > 1e-9, std, 1.0).tolist(),
        static_mean={},
        static_std={},
    )
    static = model.static(x)
    for target, p in static.items():
        model.static_mean[target] = float(p.mean())
        model.static_std[target] = float(max(p.std(), 1e-6))
    return model


def replay(
    model: PemsModel, x: FloatArray, measured: dict[str, FloatArray], delay: int = DELAY_ROWS
) -> dict[str, FloatArray]:
    """Corrected predictions of rows in order, each row's measured values learned ``delay``
    rows later, from an empty correction (what the service does, offline)."""
    static = model.static(x)
    out: dict[str, FloatArray] = {}
    for target, corrector in correctors().items():
        if target not in measured:
            continue
        z = model.terms(target, x, static[target])
        p, y = static[target], np.asarray(measured[target], dtype=np.float64)
        state: dict[str, Any] | None = None
        result = np.empty(len(p))
        for t in range(len(p)):
            if t >= delay:
                i = t - delay
                state, _ = corrector.learn(state, z[i], float(p[i]), float(y[i]))
            result[t] = corrector.corrected(state, z[t : t + 1], p[t : t + 1])[0]
        out[target] = result
    return out


def _metrics(y: dict[str, FloatArray], p: dict[str, FloatArray], suffix: str) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    nox, co = (np.asarray(y["NOX"]), np.asarray(p["NOX"])), (np.asarray(y["CO"]), p["CO"])
    return {
        f"nox_mae{suffix}": float(mean_absolute_error(*nox)),
        f"nox_rmse{suffix}": float(root_mean_squared_error(*nox)),
        f"nox_r2{suffix}": float(r2_score(*nox)),
        f"co_mae{suffix}": float(mean_absolute_error(*co)),
        f"co_r2{suffix}": float(r2_score(*co)),
    }


def evaluate(model: PemsModel, frame: pd.DataFrame, delay: int = DELAY_ROWS) -> dict[str, float]:
    """design.md keys for the static model and, with suffix ``_online``, for :func:`replay`."""
    if len(frame) < 2:
        raise ValueError("need at least 2 rows to score")
    x = frame[list(INPUTS)].to_numpy(dtype=np.float64)
    y = {t: frame[t].to_numpy(dtype=np.float64) for t in TARGETS}
    return {
        **_metrics(y, model.static(x), ""),
        **_metrics(y, replay(model, x, y, delay), "_online"),
    }


def baselines(train: pd.DataFrame, test: pd.DataFrame, delay: int = DELAY_ROWS) -> dict[str, Any]:
    """Naive references on the validation year: the training mean (climatology) and the last
    measured value known ``delay`` rows earlier (persistence, what an online service could do
    without a model)."""
    y = {t: test[t].to_numpy(dtype=np.float64) for t in TARGETS}
    clim = {t: np.full(len(test), float(train[t].mean())) for t in TARGETS}
    first = {t: np.r_[np.full(delay, float(train[t].iloc[-1])), y[t][:-delay]] for t in TARGETS}
    return {"climatology": _metrics(y, clim, ""), "persistence_24_rows": _metrics(y, first, "")}


@dataclass
class TrainingResult:
    model: PemsModel
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    validation: dict[str, Any]
    hyperparameters: dict[str, Any]
    candidates: dict[str, Any] = field(default_factory=dict)
    # inputs of the validation year, to check the compiled form on
    check_rows: FloatArray = field(default_factory=lambda: np.empty((0, len(INPUTS))))


def split_years(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Earlier years for training, the last year for validation."""
    if YEAR not in frame.columns:
        raise ValueError(f"a '{YEAR}' column is needed to validate forward in time")
    years = sorted(int(y) for y in frame[YEAR].unique())
    if len(years) < 2:
        raise ValueError(f"need at least 2 years to validate forward in time, got {years}")
    last = years[-1]
    train, test = frame[frame[YEAR] < last], frame[frame[YEAR] == last]
    if len(test) <= DELAY_ROWS + 1 or len(train) < 50:
        raise ValueError(f"too few rows to validate: {len(train)} train, {len(test)} in {last}")
    return train, test, last


def fit(frame: pd.DataFrame, progress: Callable[[str], None] = lambda _m: None) -> TrainingResult:
    """Compare the candidates on the last year, keep the best per target, refit on all years."""
    train, test, last = split_years(frame)
    first = int(train[YEAR].min())
    progress(
        f"validation: train {first}-{last - 1} ({len(train)} rows), replay {last} "
        f"({len(test)} rows, measured values known {DELAY_ROWS} rows later)"
    )
    templates = _candidates()
    per_family: dict[str, dict[str, float]] = {}
    for family in templates:
        progress(f"fitting {family} for {', '.join(TARGETS)}")
        model = _build(dict.fromkeys(TARGETS, family), train, templates)
        per_family[family] = evaluate(model, test)
        m = per_family[family]
        progress(
            f"{family} on {last}: nox_r2 {m['nox_r2']:.3f} static / {m['nox_r2_online']:.3f} "
            f"online, co_r2 {m['co_r2']:.3f} / {m['co_r2_online']:.3f}"
        )
    prefix = {"NOX": "nox", "CO": "co"}
    chosen = {
        t: max(
            per_family,
            key=lambda f, t=t: (
                per_family[f][f"{prefix[t]}_r2_online"],
                per_family[f][f"{prefix[t]}_r2"],
            ),  # type: ignore[misc]
        )
        for t in TARGETS
    }
    progress(f"chosen: {chosen}")
    if len(set(chosen.values())) == 1:
        validation_metrics = per_family[chosen["NOX"]]
    else:
        validation_metrics = evaluate(_build(chosen, train, templates), test)
    progress(f"refitting on all {len(frame)} rows")
    final = _build(chosen, frame, templates)
    candidates = {
        family: {"estimator": _describe(templates[family]), f"validation_{last}": metrics}
        for family, metrics in per_family.items()
    }
    return TrainingResult(
        model=final,
        metrics={f"validation_{last}": validation_metrics},
        baselines=baselines(train, test),
        validation={
            "method": (
                f"forward in time: fit on {first}-{last - 1}, score {last} statically and by a "
                f"replay in row order where each row's measured NOX/CO reach the online "
                f"corrector {DELAY_ROWS} rows later (empty correction at the start); the "
                f"shipped model is refitted on {first}-{last}"
            ),
            "train_years": sorted(int(y) for y in train[YEAR].unique()),
            "validation_year": last,
            "train_rows": len(train),
            "validation_rows": len(test),
            "delay_rows": DELAY_ROWS,
            "selection": "per target, the candidate with the best online R2 (then static R2)",
        },
        hyperparameters={
            "chosen": chosen,
            "estimators": {t: _describe(templates[f]) for t, f in chosen.items()},
            "candidates": candidates,
            "corrector": {t: c.describe() for t, c in correctors().items()},
        },
        candidates=candidates,
        check_rows=test[list(INPUTS)].to_numpy(dtype=np.float64),
    )


def compiled_parts(model: PemsModel, check_rows: FloatArray) -> list[Part]:
    """What :func:`vigie.models.compile.compile_parts` compiles: each target's static estimator,
    checked on ``check_rows`` (the validation year's inputs, :attr:`TrainingResult.check_rows`)
    within :data:`~.pems.COMPILED_TOLERANCE`."""
    from vigie.models.compile import Part

    return [
        Part(t, est, check_rows, COMPILED_TOLERANCE, UNIT)
        for t, est in model.compiled_parts().items()
    ]


def train(
    path: Path, progress: Callable[[str], None], thresholds: dict[str, Any]
) -> tuple[PemsModel, dict[str, Any]]:
    """Fit on the training file at ``path``, compile the static model; the model and its card
    fields (``thresholds``: the service's level rule, as the card states it)."""
    progress(f"reading {path}")
    frame = load_frame(path)
    if YEAR not in frame.columns:
        raise ValueError(f"{path}: missing column '{YEAR}'")
    result = fit(frame, progress)
    from vigie.models.compile import compile_parts  # training only: not in workers

    bundle = compile_parts(compiled_parts(result.model, result.check_rows), progress)
    years = sorted(int(y) for y in frame[YEAR].unique())
    card: dict[str, Any] = {
        "training_data": [describe_file(path, len(frame), years[0], years[-1])],
        "features": [{"name": c, "unit": INPUT_SPEC[c][0]} for c in INPUTS],
        "targets": [{"name": t, "unit": UNIT} for t in TARGETS],
        "metrics": result.metrics,
        "baselines": result.baselines,
        "validation": result.validation,
        "thresholds": thresholds,
        "hyperparameters": result.hyperparameters,
        "compiled": bundle,
    }
    return result.model, card
