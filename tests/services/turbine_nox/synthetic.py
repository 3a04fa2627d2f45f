"""Small synthetic turbine data shaped like ``turbine_nox/train.csv`` (9 inputs, CO, NOX, year).

Inputs wander smoothly around realistic values; NOX and CO are fixed functions of them plus
noise, and the last year's NOX is lower by ``drift`` mg/m3 (the real data's drift, exaggerated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

INPUTS = ("AT", "AP", "AH", "AFDP", "GTEP", "TIT", "TAT", "TEY", "CDP")
MEANS = (17.8, 1012.7, 80.0, 4.0, 25.4, 1082.0, 546.0, 133.4, 12.05)
STDS = (7.0, 6.0, 12.0, 0.7, 4.0, 15.0, 6.0, 15.0, 1.0)
LOWS = (0.5, 990.0, 30.0, 2.2, 18.0, 1001.0, 512.0, 100.5, 9.9)
HIGHS = (35.0, 1034.0, 100.0, 7.5, 37.0, 1100.0, 550.5, 174.0, 15.0)


def turbine_frame(
    rows_per_year: int = 600, years: tuple[int, ...] = (2011, 2012, 2013, 2014),
    drift: float = -8.0, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(seed)
    n = rows_per_year * len(years)
    z = np.zeros((n, len(INPUTS)))
    for t in range(1, n):  # AR(1): hourly values move slowly
        z[t] = 0.97 * z[t - 1] + 0.243 * rng.standard_normal(len(INPUTS))
    x = np.clip(np.array(MEANS) + z * np.array(STDS), LOWS, HIGHS)
    frame = pd.DataFrame(x, columns=list(INPUTS))
    year = np.repeat(np.array(years), rows_per_year)
    nox = (
        66.0 - 0.9 * (frame.AT - 17.8) - 0.08 * (frame.AH - 80) + 0.25 * (frame.TIT - 1082)
        + 0.1 * (frame.TEY - 133) + rng.normal(0, 1.5, n)
    )  # fmt: skip
    nox = nox + np.where(year == years[-1], drift, 0.0)
    co = np.exp(0.6 - 0.04 * (frame.TIT - 1082) + rng.normal(0, 0.2, n))
    frame["CO"] = np.clip(co, 0.0, 60.0)
    frame["NOX"] = np.clip(nox, 20.0, 140.0)
    frame["year"] = year
    return frame


def write_turbine_data(data_dir: Path, **kwargs: object) -> Path:
    folder = data_dir / "turbine_nox"
    folder.mkdir(parents=True, exist_ok=True)
    turbine_frame(**kwargs).to_csv(folder / "train.csv", index=False)  # type: ignore[arg-type]
    return data_dir


def measurements(
    frame: pd.DataFrame, rows: slice, *, start: str = "2015-01-01T00:00:00Z",
    with_targets: bool = False,
) -> list[dict]:  # fmt: skip
    """JSON-ready measurements, one per row, hourly from ``start``."""
    part = frame.iloc[rows]
    t0 = pd.Timestamp(start)
    out = []
    for k, (_, row) in enumerate(part.iterrows()):
        m: dict[str, object] = {
            "timestamp": (t0 + pd.Timedelta(hours=k)).isoformat().replace("+00:00", "Z")
        }
        m.update({c: float(row[c]) for c in INPUTS})
        if with_targets:
            m.update(NOX=float(row["NOX"]), CO=float(row["CO"]))
        out.append(m)
    return out
