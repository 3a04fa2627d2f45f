"""Requests with one anomaly of each kind on the last day, built from unseen synthetic data."""

from __future__ import annotations

import copy

import numpy as np

from tests.services.energy_anomaly.synthetic import day_measurements, gas_frame
from vigie_services.energy_anomaly import model as md

HISTORY = md.HISTORY_DAYS
LATER = gas_frame(start="2023-01-01", days=90, seed=3)  # a later, unseen period
SERIES = "grtgaz.auvergne-rhone-alpes"
DAY = 40  # index of the scored day in LATER's series


def request(asset: str = SERIES, n: int = HISTORY + 1, end: int = DAY) -> dict:
    """The ``n`` days ending with day ``end`` (``n - HISTORY`` predictions)."""
    return {
        "asset_id": asset,
        "measurements": day_measurements(LATER, asset, slice(end - n + 1, end + 1)),
    }


def with_anomaly(kind: str) -> dict:
    """:func:`request` whose last day carries ``kind``."""
    body = request()
    day = body["measurements"][-1]
    prev = body["measurements"][-2]
    hours = np.array(day["hourly_mwh"], dtype=float)
    if kind in ("spike", "drop"):
        factor = 1.8 if kind == "spike" else 0.4
        day["hourly_mwh"] = (hours * factor).tolist()
        day["daily_mwh"] = day["daily_mwh"] * factor
    elif kind == "stuck_flat":
        day["hourly_mwh"] = [float(hours.mean())] * 24
    elif kind == "stuck_repeat":
        day["hourly_mwh"] = copy.deepcopy(prev["hourly_mwh"])
        day["daily_mwh"] = prev["daily_mwh"]
    elif kind == "shifted_profile":
        day["hourly_mwh"] = np.roll(hours, 6).tolist()
    elif kind == "missing_hours":
        day["hourly_mwh"][5:8] = [None, None, None]
    else:
        raise ValueError(kind)
    return body


# injected case -> the kind the service must report
KINDS = {
    "spike": "spike",
    "drop": "drop",
    "stuck_flat": "stuck_meter",
    "stuck_repeat": "stuck_meter",
    "shifted_profile": "shifted_profile",
    "missing_hours": "missing_hours",
}
