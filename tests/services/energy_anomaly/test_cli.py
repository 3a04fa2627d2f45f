"""`vigie train` / `vigie evaluate` for energy-anomaly (design.md section 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import real_data_dir
from tests.services.energy_anomaly.conftest import SERVICE
from tests.services.energy_anomaly.synthetic import gas_frame
from tests.support.serving import vigie
from vigie_services.energy_anomaly import data as dt

FORECAST_KEYS = {"forecast_mae", "forecast_rmse", "forecast_r2", "forecast_mape"}
ANOMALY_KEYS = {"anomaly_roc_auc", "anomaly_precision", "anomaly_recall"}


def _env(models: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VIGIE_MODELS_DIR": str(models), "VIGIE_VAR_DIR": str(tmp_path)}


def test_evaluate_without_labels_prints_the_forecast_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    csv = tmp_path / "later.csv"
    dt.to_training_csv(gas_frame(start="2023-01-01", days=120, seed=11), csv)
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == FORECAST_KEYS
    assert all(isinstance(v, float) for v in out.values())
    assert out["forecast_r2"] > 0.9


def test_evaluate_with_is_anomaly_adds_the_anomaly_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    frame = dt.inject_anomalies(gas_frame(start="2023-01-01", days=120, seed=12), 0.08, seed=1)
    csv = tmp_path / "injected.csv"
    dt.to_training_csv(frame, csv)
    env = _env(trained_models, tmp_path)
    done = vigie(env, "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == FORECAST_KEYS | ANOMALY_KEYS
    assert out["anomaly_roc_auc"] > 0.9
    assert 0 <= out["anomaly_precision"] <= 1 and 0 <= out["anomaly_recall"] <= 1
    one = vigie(env, "evaluate", SERVICE, "--data", str(csv), "--asset", "terega.occitanie")
    assert one.returncode == 0, one.stderr
    assert set(json.loads(one.stdout)) == FORECAST_KEYS | ANOMALY_KEYS


def test_evaluate_rejects_a_csv_without_the_columns(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("date,région\n2023-01-01,bretagne\n")
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "00:00" in done.stderr


def test_train_without_data_says_where_it_looked(tmp_path: Path) -> None:
    env = {**os.environ, "VIGIE_DATA_DIR": str(tmp_path / "nowhere"),
           "VIGIE_MODELS_DIR": str(tmp_path)}  # fmt: skip
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 1
    assert "nowhere" in done.stderr


@pytest.mark.realdata
def test_real_data_train_writes_the_card_metrics(tmp_path: Path) -> None:
    data = real_data_dir()
    if not (data / dt.TRAIN_FILE).is_file():
        pytest.skip(f"real data not found: {data / dt.TRAIN_FILE} (set VIGIE_DATA_DIR)")
    env = {**os.environ, "VIGIE_DATA_DIR": str(data), "VIGIE_MODELS_DIR": str(tmp_path / "m"),
           "VIGIE_VAR_DIR": str(tmp_path)}  # fmt: skip
    trained = vigie(env, "train", SERVICE)
    assert trained.returncode == 0, trained.stderr
    card = json.loads(vigie(env, "models", "show", SERVICE).stdout)
    assert len(card["series"]) == 15 and "grtgaz.auvergne-rhone-alpes" in card["series"]
    for family in ("ridge", "random_forest"):
        assert {"mae", "rmse", "r2", "mape"} <= set(
            card["metrics"]["forecast_by_candidate"][family]
        )
    assert card["metrics"]["forecast"]["r2"] > 0.95
    assert card["metrics"]["anomaly"]["roc_auc"] > 0.9
    assert card["thresholds"]["critique"] > card["thresholds"]["alerte"]
    assert set(card["clusters"]["kmeans"]) == set(card["series"])
