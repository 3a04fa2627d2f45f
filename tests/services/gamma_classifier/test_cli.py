"""`vigie train` / `vigie evaluate` / `vigie serve` for gamma-classifier (design.md section 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import real_data_dir
from tests.services.gamma_classifier.conftest import SERVICE, make_env
from tests.services.gamma_classifier.synthetic import gamma_frame
from tests.support.servers import RedisServer, ServiceProcess
from tests.support.serving import vigie
from vigie_services.gamma_classifier import classifier as clf

DESIGN_KEYS = {"accuracy", "f1", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "tpr_at_fpr_0.1"}


def _env(models: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VIGIE_MODELS_DIR": str(models),
        "VIGIE_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def test_evaluate_prints_one_json_object_with_the_design_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    csv = tmp_path / "unseen.csv"
    gamma_frame(1500, seed=123).to_csv(csv, index=False)
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == DESIGN_KEYS
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    # unseen synthetic events of the same kind: the model separates them
    assert out["roc_auc"] > 0.9
    assert out["tpr_at_fpr_0.01"] <= out["tpr_at_fpr_0.05"] <= out["tpr_at_fpr_0.1"]
    # --asset is accepted (the metrics do not depend on the asset's cut)
    again = vigie(
        _env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv), "--asset", "M1"
    )
    assert json.loads(again.stdout) == out


def test_evaluate_rejects_a_csv_without_the_columns(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    gamma_frame(50, seed=1).drop(columns=["fAlpha"]).to_csv(csv, index=False)
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "fAlpha" in done.stderr


def test_evaluate_rejects_unknown_class_labels(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    frame = gamma_frame(50, seed=1)
    frame.loc[7, "class"] = "x"
    frame.to_csv(csv, index=False)
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "row 7" in done.stderr


def test_train_without_data_says_where_it_looked(tmp_path: Path) -> None:
    env = _env(tmp_path / "models", tmp_path, VIGIE_DATA_DIR=str(tmp_path / "nowhere"))
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 1
    assert "nowhere" in done.stderr


def test_serve_refuses_inconsistent_asset_settings(tmp_path: Path, trained_models: Path) -> None:
    config = tmp_path / "assets.json"
    config.write_text(json.dumps({SERVICE: {"M1": {"alerte_sigma": 5, "critique_sigma": 4}}}))
    env = _env(trained_models, tmp_path, VIGIE_ASSET_CONFIG=str(config))
    done = vigie(env, "serve", SERVICE, "--port", "1")
    assert done.returncode == 2
    assert "critique_sigma must be above alerte_sigma" in done.stderr


@pytest.mark.integration
def test_an_operating_point_the_validation_cannot_measure_keeps_the_service_unready(
    tmp_path: Path, trained_models: Path
) -> None:
    # ~840 validation hadrons in the synthetic training set: 0.1 % of them is not one hadron
    redis = RedisServer(tmp_path / "redis").start()
    env = make_env(tmp_path, trained_models, redis, {SERVICE: {"DEEP-1": {"hadron_fpr": 0.001}}})
    service = ServiceProcess(SERVICE, env.env, tmp_path / "service.log")
    try:
        service.start(ready_path="/readyz", expect=503)
        body = httpx.get(service.url + "/readyz").json()
        assert "DEEP-1" in body["error"]["message"]
        assert "validation hadrons" in body["error"]["message"]
    finally:
        service.stop()
        redis.stop()


@pytest.mark.realdata
def test_real_data_train_then_evaluate(tmp_path: Path) -> None:
    data = real_data_dir()
    if not (data / "gamma" / "train.csv").is_file():
        pytest.skip(f"real data directory not found: {data}/gamma/train.csv (set VIGIE_DATA_DIR)")
    env = _env(tmp_path / "models", tmp_path, VIGIE_DATA_DIR=str(data))
    trained = vigie(env, "train", SERVICE)
    assert trained.returncode == 0, trained.stderr
    shown = vigie(env, "models", "show", SERVICE)
    assert shown.returncode == 0, shown.stderr
    card = json.loads(shown.stdout)
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
    assert card["metrics"]["chosen"] in clf.CANDIDATES
    done = vigie(env, "evaluate", SERVICE, "--data", str(data / "gamma" / "train.csv"))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == DESIGN_KEYS
