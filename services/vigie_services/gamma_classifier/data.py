"""Labelled MAGIC events from a CSV shaped like ``gamma/train.csv`` (training, evaluation and
replay read it): the 10 Hillas parameters (:data:`~.features.COLUMNS`) and the ``class`` column,
``g`` (gamma, the positive class) or ``h`` (hadron)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vigie_services.gamma_classifier.features import COLUMNS

# pandas is imported where a file is read, never at import: serving workers import this
# package and must not pay for it.
if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TRAINING_FILE = "gamma/train.csv"  # relative to the data directory
LABEL = "class"
GAMMA, HADRON = "g", "h"


def load_events(path: Path) -> tuple[FloatArray, IntArray]:
    """Events and labels (1 = gamma) of a CSV with the columns of ``gamma/train.csv``."""
    import pandas as pd

    frame = pd.read_csv(path)
    return events_from_frame(frame, str(path))


def events_from_frame(frame: pd.DataFrame, name: str = "frame") -> tuple[FloatArray, IntArray]:
    """The events ``(n, 10)`` and labels of ``frame``; ``ValueError`` naming the first column
    missing or row unusable (``name`` says where the frame comes from)."""
    import pandas as pd

    missing = [c for c in (*COLUMNS, LABEL) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{name}: no rows")
    labels = frame[LABEL].astype(str).str.strip()
    bad = ~labels.isin([GAMMA, HADRON])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{name}: column {LABEL!r} must be {GAMMA!r} or {HADRON!r}, "
            f"row {row} has {frame[LABEL].iloc[row]!r}"
        )
    values = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce")
    invalid = ~np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise ValueError(f"{name}: missing, non-numeric or infinite value in row {row}")
    return values.to_numpy(dtype=np.float64), (labels == GAMMA).to_numpy().astype(np.int64)
