"""The operating cut on P(gamma): which events are classified gamma.

The class an event gets (gamma/hadron) comes from a cut on P(gamma) chosen for a hadron
false-positive rate ``f`` (default :data:`DEFAULT_HADRON_FPR` = 5 %, per asset configurable):
the cut lets through at most ``floor(f * n_h)`` of the ``n_h`` hadrons of the development set's
out-of-fold scores (:func:`operating_point`), halfway between the last hadron score kept out and
the next higher one. Out-of-fold scores come from models that did not see those events, so they
behave like the scores of unseen events; the final model is refitted on more data, so its cut
is checked on the held-out slice and reported in the card (``thresholds``). The measured ``f``
and gamma efficiency at the cut feed the batch significance (:mod:`.significance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_HADRON_FPR = 0.05


@dataclass(frozen=True)
class OperatingPoint:
    """A cut on P(gamma): events with ``p_gamma >= threshold`` are classified gamma."""

    target_fpr: float
    threshold: float
    hadron_fpr: float  # measured on the validation (out-of-fold) scores, <= target_fpr
    gamma_efficiency: float  # measured likewise
    validation_hadrons: int
    validation_gammas: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "target_hadron_fpr": self.target_fpr,
            "probability_threshold": self.threshold,
            "hadron_fpr": self.hadron_fpr,
            "gamma_efficiency": self.gamma_efficiency,
            "validation_hadrons": self.validation_hadrons,
            "validation_gammas": self.validation_gammas,
        }


def operating_point(
    hadron_scores: npt.ArrayLike, gamma_scores: npt.ArrayLike, target_fpr: float
) -> OperatingPoint:
    """The cut that lets through at most ``floor(target_fpr * n_h)`` validation hadrons.

    Raises ``ValueError`` when that is no hadron at all (``target_fpr`` too small for the sample,
    or ties), since a zero false-positive rate leaves the background unmeasured.
    """
    if not 0 < target_fpr < 1:
        raise ValueError(f"target hadron FPR must be in (0, 1), got {target_fpr}")
    h = np.sort(np.asarray(hadron_scores, dtype=np.float64))[::-1]
    g = np.asarray(gamma_scores, dtype=np.float64)
    n_h = len(h)
    allowed = math.floor(target_fpr * n_h + 1e-9)
    if allowed < 1 or not len(g):
        raise ValueError(
            f"hadron FPR {target_fpr} is below what {n_h} validation hadrons can measure "
            f"(at least {1 / max(n_h, 1):.4g})"
        )
    boundary = h[allowed]  # the highest hadron score that must stay below the cut
    above = h[h > boundary]
    if not len(above):
        raise ValueError(f"no cut reaches hadron FPR {target_fpr}: tied validation scores")
    threshold = float((boundary + above.min()) / 2)
    return OperatingPoint(
        target_fpr=target_fpr,
        threshold=threshold,
        hadron_fpr=float((h >= threshold).mean()),
        gamma_efficiency=float((g >= threshold).mean()),
        validation_hadrons=n_h,
        validation_gammas=len(g),
    )
