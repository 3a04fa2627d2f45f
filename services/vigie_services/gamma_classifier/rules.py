"""What a batch of one telescope is judged with: its asset's settings resolved against the model
card's defaults (:class:`Rule`) and the operating cut on P(gamma) they choose.

Every asset's rule and cut are resolved once, when a model is bound (:meth:`AssetRules.resolve`),
so that a configured ``hadron_fpr`` the validation sample cannot support keeps the service
unready with the reason, instead of failing requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigie.models.store import ModelLoadError
from vigie_services.gamma_classifier.classifier import GammaModel
from vigie_services.gamma_classifier.operating_point import DEFAULT_HADRON_FPR, OperatingPoint
from vigie_services.gamma_classifier.significance import BatchExcess, batch_excess

DEFAULT_ALERTE_SIGMA = 3.0
DEFAULT_CRITIQUE_SIGMA = 5.0
MIN_HADRON_FPR, MAX_HADRON_FPR = 0.001, 0.5


@dataclass(frozen=True)
class Rule:
    """The resolved settings of one asset; ``ValueError`` for an inconsistent one."""

    hadron_fpr: float
    alerte_sigma: float
    critique_sigma: float

    def __post_init__(self) -> None:
        if not MIN_HADRON_FPR <= self.hadron_fpr <= MAX_HADRON_FPR:
            raise ValueError(f"hadron_fpr must be within [{MIN_HADRON_FPR}, {MAX_HADRON_FPR}]")
        if not (self.alerte_sigma > 0 and self.critique_sigma > 0):
            raise ValueError("alerte_sigma and critique_sigma must be above 0")
        if self.critique_sigma <= self.alerte_sigma:
            raise ValueError("critique_sigma must be above alerte_sigma")

    def overridden(self, overrides: Mapping[str, float]) -> Rule:
        """This rule with the settings an asset configures (the others kept)."""
        return dataclasses.replace(self, **overrides)


#: The defaults before a model is known (the card's are the same unless it says otherwise).
CODE_DEFAULTS = Rule(DEFAULT_HADRON_FPR, DEFAULT_ALERTE_SIGMA, DEFAULT_CRITIQUE_SIGMA)


@dataclass(frozen=True)
class AssetRule:
    """One asset's rule and the cut on P(gamma) of its ``hadron_fpr``."""

    rule: Rule
    cut: OperatingPoint

    def excess(self, events: int, gammas: int) -> BatchExcess:
        """The gamma excess of a batch of ``events`` of which ``gammas`` passed the cut."""
        return batch_excess(events, gammas, self.cut.hadron_fpr, self.cut.gamma_efficiency)


class AssetRules:
    """Every configured asset's :class:`AssetRule`, and the one of any other asset."""

    def __init__(self, default: AssetRule, configured: Mapping[str, AssetRule]) -> None:
        self.default = default
        self.configured = dict(configured)

    def for_asset(self, asset_id: str) -> AssetRule:
        return self.configured.get(asset_id, self.default)

    @classmethod
    def resolve(
        cls,
        service: str,
        model: GammaModel,
        levels: Mapping[str, Any],
        overrides: Mapping[str, Mapping[str, float]],
    ) -> AssetRules:
        """Rules from the card's ``thresholds.levels`` and the model's default cut, with each
        asset's ``overrides``; :class:`ModelLoadError` naming an asset that cannot be served."""
        resolved: dict[str, AssetRule] = {}
        for asset, settings in [("", {}), *overrides.items()]:
            try:
                defaults = Rule(
                    hadron_fpr=float(model.default_fpr),
                    alerte_sigma=float(levels.get("alerte_sigma", DEFAULT_ALERTE_SIGMA)),
                    critique_sigma=float(levels.get("critique_sigma", DEFAULT_CRITIQUE_SIGMA)),
                )
                rule = defaults.overridden(settings)
                resolved[asset] = AssetRule(rule, model.operating_point(rule.hadron_fpr))
            except ValueError as exc:
                raise ModelLoadError(
                    f"{service}: no usable operating point for asset {asset or '(default)'}: {exc}"
                ) from exc
        default = resolved.pop("")
        return cls(default, resolved)
