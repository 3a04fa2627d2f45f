"""The model features of solar-flare, built from daily summaries (:mod:`.summary`).

One definition for training, evaluation and serving: :func:`features` reads a table of summaries
(``daily_train.csv`` itself), :func:`features_matrix` the same columns as a matrix in
:data:`~.summary.MODEL_INPUTS` order (what serving builds from requests, without a DataFrame);
both give the same numbers. No date, no absolute time: only activity (log10 of peak fluxes, log1p
of flare counts, square roots of sunspot numbers, days since the last big flare clipped at
:data:`~.summary.DAYS_SINCE_CAP`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vigie_services.solar_flare.summary import (
    COUNT_COLUMNS,
    DAYS_SINCE_CAP,
    DAYS_SINCE_COLUMNS,
    FLUX_COLUMNS,
    INPUT_POSITION,
    MODEL_INPUTS,
)

if TYPE_CHECKING:  # training and evaluation only: serving never builds a DataFrame
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

FLUX_FLOOR_W_M2 = 1e-9  # log10 of "no listed flare" (0 W/m²): below A1.0 = 1e-8


def _feature_spec() -> list[dict[str, str]]:
    spec = [{"name": f"log10_{c}", "unit": "log10(W/m²), 0 W/m² counted as 1e-9"}
            for c in FLUX_COLUMNS]  # fmt: skip
    spec += [{"name": f"log1p_{c}", "unit": "log(1 + count)"} for c in COUNT_COLUMNS]
    spec += [
        {"name": "sqrt_sunspot_number", "unit": "sqrt(SN)"},
        {"name": "sqrt_sunspot_number_mean_27d", "unit": "sqrt(SN)"},
        {"name": "sunspot_number_change_1d", "unit": "SN units"},
    ]
    spec += [
        {"name": f"log1p_{c}", "unit": f"log(1 + days), days clipped to 0 .. {DAYS_SINCE_CAP}"}
        for c in DAYS_SINCE_COLUMNS
    ]
    return spec


FEATURES: tuple[dict[str, str], ...] = tuple(_feature_spec())
FEATURE_NAMES: tuple[str, ...] = tuple(f["name"] for f in FEATURES)
# Monotone direction of each feature on flare odds (HistGradientBoosting's monotonic_cst):
# more flux, flares and sunspots -> more risk; more days since the last big flare -> less.
MONOTONIC: tuple[int, ...] = tuple(
    -1 if "days_since" in n else 0 if n == "sunspot_number_change_1d" else 1 for n in FEATURE_NAMES
)


def features(summary_table: pd.DataFrame) -> FloatArray:
    """Model features, one row per summary (columns :data:`FEATURE_NAMES`).

    ``summary_table`` holds at least the :data:`~.summary.MODEL_INPUTS` columns
    (``daily_train.csv``, or summaries received or derived at serving time).
    """
    missing = [c for c in MODEL_INPUTS if c not in summary_table.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    return features_matrix(summary_table[list(MODEL_INPUTS)].to_numpy(dtype=np.float64))


def features_matrix(values: npt.ArrayLike) -> FloatArray:
    """:func:`features` of summaries given as a matrix ``(n, len(MODEL_INPUTS))`` in
    :data:`~.summary.MODEL_INPUTS` order (:func:`~.summary.inputs_matrix`); the same numbers."""
    t = np.asarray(values, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(MODEL_INPUTS):
        raise ValueError(f"values must have shape (n, {len(MODEL_INPUTS)}) in MODEL_INPUTS order")
    if not np.isfinite(t).all():
        raise ValueError("summary values must be finite (no NaN or infinity)")
    at = INPUT_POSITION
    blocks = [np.log10(np.maximum(t[:, at[c]], FLUX_FLOOR_W_M2)) for c in FLUX_COLUMNS]
    blocks += [np.log1p(np.maximum(t[:, at[c]], 0.0)) for c in COUNT_COLUMNS]
    blocks += [
        np.sqrt(np.maximum(t[:, at["sunspot_number"]], 0.0)),
        np.sqrt(np.maximum(t[:, at["sunspot_number_mean_27d"]], 0.0)),
        t[:, at["sunspot_number_change_1d"]],
    ]
    blocks += [np.log1p(np.clip(t[:, at[c]], 0, DAYS_SINCE_CAP)) for c in DAYS_SINCE_COLUMNS]
    return np.column_stack(blocks).astype(np.float64)
