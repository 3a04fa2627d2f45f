"""The prediction items of one call (the ``EmissionPrediction`` of
:mod:`vigie_services.turbine_nox.service`, without the ``timestamp`` and ``level`` the runtime
adds): values rounded to 0.001 mg/m3, residuals against the analyser values sent, the turbine's
calibration, its limits, the inputs used and what to do at the item's level."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vigie.contract.levels import Level
from vigie_services.turbine_nox.pems import INPUTS, FloatArray
from vigie_services.turbine_nox.recalibration import static_key

RECOMMENDATIONS = {
    Level.NORMAL: "No action: predicted emissions within the permit.",
    Level.ALERTE: (
        "Emissions near the permit limit: check the analyser and the combustion tuning "
        "(water/steam injection, firing temperature) and be ready to reduce load."
    ),
    Level.CRITIQUE: (
        "Predicted emissions above the permit limit: reduce load or adjust combustion now, "
        "verify against the analyser and record the exceedance per the permit procedure."
    ),
}


def items(
    levels: Sequence[Level],
    corrected: Mapping[str, FloatArray],
    outputs: Mapping[str, FloatArray],
    measured: Mapping[str, FloatArray],
    inputs: FloatArray,
    calibration: dict[str, Any],
    limits: dict[str, Any],
) -> list[dict[str, Any]]:
    """One item per row: ``corrected`` and ``measured`` (NaN: no analyser value) per target,
    ``outputs`` of :func:`~.recalibration.model_outputs`, ``inputs`` the rows of
    :data:`~.pems.INPUTS`; ``calibration`` and ``limits`` are the call's (each item gets its
    copy)."""
    columns = (
        corrected["NOX"].tolist(),
        corrected["CO"].tolist(),
        outputs[static_key("NOX")].tolist(),
        outputs[static_key("CO")].tolist(),
        measured["NOX"].tolist(),
        measured["CO"].tolist(),
        inputs.tolist(),
    )
    return [
        _item(level, nox, co, nox_s, co_s, nox_m, co_m, x, calibration, limits)
        for level, nox, co, nox_s, co_s, nox_m, co_m, x in zip(levels, *columns, strict=True)
    ]


def _item(
    level: Level,
    nox: float,
    co: float,
    nox_s: float,
    co_s: float,
    nox_m: float,
    co_m: float,
    inputs: list[float],
    calibration: dict[str, Any],
    limits: dict[str, Any],
) -> dict[str, Any]:
    # Python floats and round() throughout: the values are rounded as they always were
    # (numpy's rounding differs from round() in the last digit of some values).
    body: dict[str, Any] = {
        "nox_mg_m3": round(nox, 3),
        "co_mg_m3": round(co, 3),
        "nox_static_mg_m3": round(nox_s, 3),
        "co_static_mg_m3": round(co_s, 3),
    }
    if not math.isnan(nox_m):
        body["nox_measured_mg_m3"] = nox_m
        body["nox_residual_mg_m3"] = round(nox_m - nox, 3)
    if not math.isnan(co_m):
        body["co_measured_mg_m3"] = co_m
        body["co_residual_mg_m3"] = round(co_m - co, 3)
    body["calibration"] = {
        **calibration,
        "nox_correction_mg_m3": round(nox - nox_s, 3),
        "co_correction_mg_m3": round(co - co_s, 3),
    }
    body["limits"] = dict(limits)
    body["inputs"] = dict(zip(INPUTS, inputs, strict=True))
    body["recommendation"] = RECOMMENDATIONS[level]
    return body
