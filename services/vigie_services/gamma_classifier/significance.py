"""Significance of a gamma excess in a batch of events: Li & Ma (1983), eq. 17.

Li, T.-P. & Ma, Y.-Q. (1983), "Analysis methods for results in gamma-ray astronomy",
ApJ 272, 317. Eq. 17 gives the significance of an ON-region excess over a background measured in
an OFF region whose background acceptance is ``1/alpha`` times larger::

    S = sqrt(2) * sqrt( N_on  * ln[ (1 + alpha) / alpha * N_on  / (N_on + N_off) ]
                      + N_off * ln[ (1 + alpha)         * N_off / (N_on + N_off) ] )

It is the likelihood-ratio test of "background only" for the split of ``N_on + N_off`` counts
between the two regions. :func:`li_ma_significance` returns it *signed*: ``+S`` when
``N_on > alpha * N_off`` (an excess), ``-S`` for a deficit, 0 when they are equal. A term whose
count is 0 contributes 0 (the limit of ``x ln x``), so ``N_on = 0`` gives
``S = -sqrt(2 N_off ln(1 + alpha))`` and ``N_off = 0`` gives
``S = +sqrt(2 N_on ln((1 + alpha) / alpha))``.

Mapping a classified batch onto ON/OFF counts (:func:`batch_excess`)
--------------------------------------------------------------------
A batch holds ``N`` events of one telescope. The classifier's operating threshold lets a hadron
through with probability ``f`` (the hadron false-positive rate measured on validation data) and
keeps a gamma with probability ``eps`` (the gamma efficiency).

* ``N_on``  = events classified gamma (``P(gamma) >= threshold``);
* ``N_off`` = events classified hadron (``N - N_on``): the control sample;
* ``alpha`` = ``f / (1 - f)``: for background (hadrons) the odds of landing ON rather than OFF.

Under the null hypothesis "the batch is background only", every event lands ON independently
with probability ``f = alpha / (1 + alpha)``, which is exactly the ON/OFF model eq. 17 tests. The
derived numbers in the summary are:

* estimated hadrons ``N_off / (1 - f)`` (the hadron-classified events are the ``1 - f`` share of
  the hadrons that were rejected);
* expected background ``B = f * N_off / (1 - f) = alpha * N_off`` (misclassified hadrons);
* excess ``N_on - B``;
* estimated gammas ``excess * (1 - f) / (eps - f)``: unbiased when the operating point holds,
  since ``E[N_on - alpha * N_off] = N_gamma * (eps - f) / (1 - f)``.

Gammas rejected by the classifier (``1 - eps`` of them) fall in the OFF sample and inflate the
background estimate, so the significance is conservative for gamma-rich batches. The operating
point (``f``) comes from validation events; a batch whose hadrons differ from them (another
telescope, other conditions) needs its own calibration, which is what per-asset settings are for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def li_ma_significance(n_on: float, n_off: float, alpha: float) -> float:
    """Signed significance of Li & Ma (1983) eq. 17, in standard deviations (sigma).

    ``n_on``, ``n_off`` >= 0 (counts), ``alpha`` > 0. Both counts 0 gives 0.
    """
    if n_on < 0 or n_off < 0:
        raise ValueError(f"counts must be >= 0, got n_on={n_on}, n_off={n_off}")
    if not alpha > 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    total = n_on + n_off
    if total == 0:
        return 0.0
    on_term = n_on * math.log((1 + alpha) / alpha * n_on / total) if n_on > 0 else 0.0
    off_term = n_off * math.log((1 + alpha) * n_off / total) if n_off > 0 else 0.0
    # The sum is a (scaled) Kullback-Leibler divergence, >= 0; clip rounding below 0.
    s = math.sqrt(2.0 * max(on_term + off_term, 0.0))
    excess = n_on - alpha * n_off
    if excess > 0:
        return s
    if excess < 0:
        return -s
    return 0.0


@dataclass(frozen=True)
class BatchExcess:
    """The gamma excess of a batch of classified events (see the module docstring)."""

    events: int
    gamma_classified: int
    hadron_classified: int
    hadron_fpr: float
    gamma_efficiency: float
    alpha: float
    estimated_hadrons: float
    expected_background: float
    excess: float
    estimated_gammas: float
    significance_sigma: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_excess(
    events: int, gamma_classified: int, hadron_fpr: float, gamma_efficiency: float
) -> BatchExcess:
    """ON = events classified gamma, OFF = the rest, ``alpha = f / (1 - f)``; eq. 17."""
    if events < 0 or not 0 <= gamma_classified <= events:
        raise ValueError(f"need 0 <= gamma_classified <= events, got {gamma_classified}/{events}")
    if not 0 < hadron_fpr < 1:
        raise ValueError(f"hadron_fpr must be in (0, 1), got {hadron_fpr}")
    if not hadron_fpr < gamma_efficiency <= 1:
        raise ValueError(
            f"gamma_efficiency must be in (hadron_fpr, 1], got {gamma_efficiency} "
            f"(hadron_fpr {hadron_fpr})"
        )
    n_on = gamma_classified
    n_off = events - gamma_classified
    alpha = hadron_fpr / (1 - hadron_fpr)
    background = alpha * n_off
    excess = n_on - background
    return BatchExcess(
        events=events,
        gamma_classified=n_on,
        hadron_classified=n_off,
        hadron_fpr=hadron_fpr,
        gamma_efficiency=gamma_efficiency,
        alpha=alpha,
        estimated_hadrons=n_off / (1 - hadron_fpr),
        expected_background=background,
        excess=excess,
        estimated_gammas=excess * (1 - hadron_fpr) / (gamma_efficiency - hadron_fpr),
        significance_sigma=li_ma_significance(n_on, n_off, alpha),
    )
