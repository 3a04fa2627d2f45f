"""gamma-classifier's per-asset settings (``AssetSettings`` in ``VIGIE_ASSET_CONFIG``): refused at
start-up with the asset and the field, resolved against the model card when a model is bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.services.gamma_classifier.conftest import SERVICE
from vigie.contract.errors import ConfigError
from vigie.models.store import ModelLoadError, ModelStore
from vigie.settings import VigieSettings
from vigie_services.gamma_classifier.service import GammaClassifierService


def service_with(tmp_path: Path, assets: dict[str, Any]) -> GammaClassifierService:
    path = tmp_path / "assets.json"
    path.write_text(json.dumps({SERVICE: assets}))
    return GammaClassifierService(VigieSettings(asset_config=path))


@pytest.mark.parametrize(
    ("settings", "where", "why"),
    [
        (
            {"alerte_sigma": 5, "critique_sigma": 4},
            "M1",
            "critique_sigma must be above alerte_sigma",
        ),
        # one key alone, against the default of the other (CRITIQUE 5 sigma)
        ({"alerte_sigma": 6}, "M1", "critique_sigma must be above alerte_sigma"),
        ({"critique_sigma": 2.5}, "M1", "critique_sigma must be above alerte_sigma"),
        ({"hadron_fpr": 0.9}, "M1.hadron_fpr", "less than or equal to 0.5"),
        ({"alerte_sigma": 0}, "M1.alerte_sigma", "greater than 0"),
        ({"alerte_sigma": "high"}, "M1.alerte_sigma", "valid number"),
        ({"hadron_frp": 0.01}, "M1.hadron_frp", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_fail_start_up_naming_the_asset_and_field(
    tmp_path: Path, settings: dict[str, Any], where: str, why: str
) -> None:
    with pytest.raises(ConfigError) as err:
        service_with(tmp_path, {"OK-1": {"hadron_fpr": 0.02}, "M1": settings})
    assert f"{SERVICE}.{where}:" in str(err.value) and why in str(err.value)


def test_unset_keys_take_the_cards_defaults(tmp_path: Path, trained_models: Path) -> None:
    svc = service_with(
        tmp_path,
        {
            "STRICT-1": {"hadron_fpr": 0.01},
            "SENSITIVE-1": {"alerte_sigma": 1, "critique_sigma": 2},
            "HIGH-1": {"critique_sigma": 9.5},
        },
    )
    loaded = ModelStore(trained_models).load_current(SERVICE, lean=True)
    svc.bind(loaded)
    assert svc.rules is not None
    card = loaded.card.thresholds
    default = svc.rules.for_asset("ANY-OTHER")
    assert default.cut.threshold == card["operating_point"]["probability_threshold"]
    assert (default.rule.alerte_sigma, default.rule.critique_sigma) == (3.0, 5.0)
    strict = svc.rules.for_asset("STRICT-1")
    assert (
        strict.cut.threshold == card["operating_points"]["hadron_fpr_0.01"]["probability_threshold"]
    )
    assert strict.rule.alerte_sigma == 3.0 and strict.cut.threshold > default.cut.threshold
    sensitive = svc.rules.for_asset("SENSITIVE-1")
    assert (sensitive.rule.alerte_sigma, sensitive.rule.critique_sigma) == (1.0, 2.0)
    assert isinstance(sensitive.rule.alerte_sigma, float)  # 1.0 in the JSON answers, not 1
    assert sensitive.cut == default.cut
    high = svc.rules.for_asset("HIGH-1")
    assert (high.rule.alerte_sigma, high.rule.critique_sigma) == (3.0, 9.5)


def test_a_cut_the_validation_cannot_measure_keeps_the_model_unbound(
    tmp_path: Path, trained_models: Path
) -> None:
    # ~840 validation hadrons in the synthetic training set: 0.1 % of them is not one hadron
    svc = service_with(tmp_path, {"DEEP-1": {"hadron_fpr": 0.001}})
    with pytest.raises(ModelLoadError, match=r"DEEP-1.*validation hadrons"):
        svc.bind(ModelStore(trained_models).load_current(SERVICE, lean=True))
    assert svc.loaded is None and svc.rules is None


def test_an_artifact_that_is_not_a_gamma_model_is_refused(trained_models: Path) -> None:
    loaded = ModelStore(trained_models).load_current(SERVICE, lean=True)
    svc = GammaClassifierService(VigieSettings(asset_config=None))
    with pytest.raises(ModelLoadError, match="not a GammaModel"):
        svc.bind(type(loaded)(card=loaded.card, model={"coef": 1}, path=loaded.path))
