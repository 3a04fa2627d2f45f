"""What a batch's result says: the level event's explanation (:func:`batch_detail`) and the
response's ``summary`` (:func:`summary_body`), from the batch's gamma excess and level."""

from __future__ import annotations

from typing import Any

from vigie.contract.batch import LevelDetail
from vigie.contract.levels import Level
from vigie_services.gamma_classifier.rules import AssetRule
from vigie_services.gamma_classifier.significance import BatchExcess

METHOD = (
    "Li & Ma (1983) eq. 17 with N_on = events classified gamma, N_off = events classified "
    "hadron, alpha = hadron_fpr / (1 - hadron_fpr)"
)
RECOMMENDATIONS = {
    Level.NORMAL: "No significant gamma excess in this batch: keep observing.",
    Level.ALERTE: (
        "Gamma excess above the ALERTE significance: a flaring source candidate. Check the "
        "pointing, weather and trigger rates, and keep accumulating events on the source."
    ),
    Level.CRITIQUE: (
        "Gamma excess above the CRITIQUE significance: a flaring source candidate. Confirm "
        "data quality (pointing, weather, trigger) and notify the follow-up (alert) desk."
    ),
}


def batch_detail(excess: BatchExcess, level: Level, asset: AssetRule) -> LevelDetail:
    """The significance (``sigma``), the threshold crossed (``alerte_sigma`` when NORMAL) and
    a message with the counts."""
    rule = asset.rule
    s = excess.significance_sigma
    counts = (
        f"{excess.gamma_classified} of {excess.events} events classified gamma, expected "
        f"background {excess.expected_background:.1f}, excess {excess.excess:.1f}: {s:.2f} sigma"
    )
    if level is Level.NORMAL:
        threshold = rule.alerte_sigma
        message = f"{counts}, below ALERTE {threshold:g} sigma"
    else:
        threshold = rule.critique_sigma if level is Level.CRITIQUE else rule.alerte_sigma
        message = f"flaring source candidate: {counts} reaches {level} {threshold:g} sigma"
    return LevelDetail(s, "sigma", threshold, message)


def summary_body(
    excess: BatchExcess, level: Level, asset: AssetRule, detail: LevelDetail
) -> dict[str, Any]:
    """The response's ``summary``: the excess, the level, the rule and the cut applied."""
    return {
        **excess.as_dict(),
        "level": level,
        "alerte_sigma": asset.rule.alerte_sigma,
        "critique_sigma": asset.rule.critique_sigma,
        "probability_threshold": asset.cut.threshold,
        "target_hadron_fpr": asset.cut.target_fpr,
        "message": detail.message,
        "recommendation": RECOMMENDATIONS[level],
        "method": METHOD,
    }
