"""Small synthetic MAGIC-like events (never the real data set).

Gammas are narrow, compact images pointing near the camera centre (small fAlpha); hadrons are
broader and point anywhere. The two overlap, so a classifier reaches a good but imperfect ROC AUC.
Every event satisfies the service's physical bounds (fWidth <= fLength, fConc1 <= fConc, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = [
    "fLength", "fWidth", "fSize", "fConc", "fConc1",
    "fAsym", "fM3Long", "fM3Trans", "fAlpha", "fDist",
]  # fmt: skip
START = datetime(2024, 3, 1, 22, 0, tzinfo=UTC)


def gamma_frame(n: int, seed: int = 0, gamma_fraction: float = 0.65) -> pd.DataFrame:
    """``n`` events with the columns of ``gamma/train.csv`` (``class`` g/h)."""
    rng = np.random.default_rng(seed)
    g = rng.random(n) < gamma_fraction
    size = rng.normal(np.where(g, 2.7, 2.9), 0.35).clip(1.95, 5.3)
    length = np.exp(rng.normal(np.where(g, np.log(28.0), np.log(48.0)), 0.45)).clip(4.5, 330.0)
    width = length * np.where(g, rng.beta(3.0, 7.0, n), rng.beta(4.0, 4.0, n))
    conc = rng.beta(np.where(g, 5.0, 4.0), 7.0).clip(0.02, 0.89)
    conc1 = conc * rng.uniform(0.45, 0.75, n)
    frame = pd.DataFrame(
        {
            "fLength": length,
            "fWidth": width,
            "fSize": size,
            "fConc": conc,
            "fConc1": conc1,
            "fAsym": rng.normal(np.where(g, 10.0, -5.0), np.where(g, 30.0, 60.0)).clip(-450, 450),
            "fM3Long": rng.normal(np.where(g, 15.0, 8.0), 40.0).clip(-300, 230),
            "fM3Trans": rng.normal(0.0, np.where(g, 10.0, 25.0)).clip(-200, 170),
            "fAlpha": np.where(g, np.abs(rng.normal(0.0, 12.0, n)), rng.uniform(0.0, 90.0, n)).clip(
                0.0, 90.0
            ),
            "fDist": rng.normal(190.0, 70.0, n).clip(5.0, 480.0),
        }
    ).round(4)
    frame["fWidth"] = np.minimum(frame["fWidth"], frame["fLength"])
    frame["fConc1"] = np.minimum(frame["fConc1"], frame["fConc"])
    frame["class"] = np.where(g, "g", "h")
    return frame


def write_gamma_data(data_dir: Path, n: int = 3000, seed: int = 0) -> Path:
    """``data_dir/gamma/train.csv`` with ``n`` synthetic events."""
    folder = data_dir / "gamma"
    folder.mkdir(parents=True, exist_ok=True)
    gamma_frame(n, seed).to_csv(folder / "train.csv", index=False)
    return data_dir


def events(rows: list[dict[str, Any]], start: datetime = START) -> list[dict[str, Any]]:
    """API events (distinct timestamps, 1 ms apart) from rows holding the 10 columns."""
    return [
        {"timestamp": (start + timedelta(milliseconds=i)).isoformat(),
         **{c: float(row[c]) for c in COLUMNS}}
        for i, row in enumerate(rows)
    ]  # fmt: skip
