"""`vigie train` / `vigie evaluate` / `vigie serve` for gamma-classifier (design.md section 7);
the refusals every service shares are in ``tests/services/test_cli_common.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.services.gamma_classifier.conftest import SERVICE
from tests.services.gamma_classifier.synthetic import gamma_frame
from tests.support.cli import (
    assert_evaluate_refuses,
    cli_env,
    evaluate,
    real_data_file,
    train_on_real_data,
)
from tests.support.serving import serve, vigie
from vigie_services.gamma_classifier.candidates import CANDIDATES

DESIGN_KEYS = {"accuracy", "f1", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "tpr_at_fpr_0.1"}


def test_evaluate_prints_one_json_object_with_the_design_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    csv = tmp_path / "unseen.csv"
    gamma_frame(1500, seed=123).to_csv(csv, index=False)
    env = cli_env(trained_models, tmp_path / "var")
    out = evaluate(env, SERVICE, csv)
    assert set(out) == DESIGN_KEYS
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    # unseen synthetic events of the same kind: the model separates them
    assert out["roc_auc"] > 0.9
    assert out["tpr_at_fpr_0.01"] <= out["tpr_at_fpr_0.05"] <= out["tpr_at_fpr_0.1"]
    # --asset is accepted (the metrics do not depend on the asset's cut)
    assert evaluate(env, SERVICE, csv, "--asset", "M1") == out


def test_evaluate_rejects_unknown_class_labels(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    frame = gamma_frame(50, seed=1)
    frame.loc[7, "class"] = "x"
    frame.to_csv(csv, index=False)
    assert_evaluate_refuses(cli_env(trained_models, tmp_path / "var"), SERVICE, csv, "row 7")


def test_serve_refuses_inconsistent_asset_settings(tmp_path: Path, trained_models: Path) -> None:
    config = tmp_path / "assets.json"
    config.write_text(json.dumps({SERVICE: {"M1": {"alerte_sigma": 5, "critique_sigma": 4}}}))
    env = cli_env(trained_models, tmp_path / "var", VIGIE_ASSET_CONFIG=str(config))
    done = vigie(env, "serve", SERVICE, "--port", "1")
    assert done.returncode == 2
    assert "critique_sigma must be above alerte_sigma" in done.stderr


@pytest.mark.integration
def test_an_operating_point_the_validation_cannot_measure_keeps_the_service_unready(
    tmp_path: Path, trained_models: Path
) -> None:
    # ~840 validation hadrons in the synthetic training set: 0.1 % of them is not one hadron
    deep = {"DEEP-1": {"hadron_fpr": 0.001}}
    with (
        serve(SERVICE, tmp_path, trained_models, expect=503, asset_config=deep) as served,
        served.client() as c,
    ):
        body = c.get("/readyz").json()
    assert "DEEP-1" in body["error"]["message"]
    assert "validation hadrons" in body["error"]["message"]


@pytest.mark.realdata
def test_real_data_train_then_evaluate(tmp_path: Path) -> None:
    trained = train_on_real_data(tmp_path, SERVICE, "gamma/train.csv")
    card = trained.card
    candidates = card["metrics"]["candidates"]
    assert {"logistic_regression", "random_forest", "hist_gradient_boosting"} <= set(candidates)
    for name, m in candidates.items():
        for part in ("cross_validation", "holdout"):
            assert set(m[part]) == DESIGN_KEYS, (name, part)
            assert all(0.0 <= v <= 1.0 for v in m[part].values()), (name, part)
    assert card["training_data"][0]["rows"] == 15216
    op = card["thresholds"]["operating_point"]
    assert op["hadron_fpr"] <= 0.05 and 0 < op["probability_threshold"] < 1
    # the kept model's held-out figures (the targets are on unseen events)
    held_out = card["metrics"]["holdout"]
    assert held_out["roc_auc"] >= 0.94 and held_out["accuracy"] >= 0.88, held_out
    assert card["metrics"]["chosen"] in CANDIDATES
    out = evaluate(trained.env, SERVICE, real_data_file("gamma/train.csv"))
    assert set(out) == DESIGN_KEYS
