"""`vigie train` / `vigie evaluate` for energy-anomaly (design.md section 7); the refusals every
service shares are in ``tests/services/test_cli_common.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.energy_anomaly.conftest import SERVICE
from tests.services.energy_anomaly.synthetic import gas_frame
from tests.support.cli import cli_env, evaluate, train_on_real_data
from vigie_services.energy_anomaly import data as dt

FORECAST_KEYS = {"forecast_mae", "forecast_rmse", "forecast_r2", "forecast_mape"}
ANOMALY_KEYS = {"anomaly_roc_auc", "anomaly_precision", "anomaly_recall"}


def test_evaluate_without_labels_prints_the_forecast_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    csv = tmp_path / "later.csv"
    dt.to_training_csv(gas_frame(start="2023-01-01", days=120, seed=11), csv)
    out = evaluate(cli_env(trained_models, tmp_path), SERVICE, csv)
    assert set(out) == FORECAST_KEYS
    assert all(isinstance(v, float) for v in out.values())
    assert out["forecast_r2"] > 0.9


def test_evaluate_with_is_anomaly_adds_the_anomaly_keys(
    tmp_path: Path, trained_models: Path
) -> None:
    frame = dt.inject_anomalies(gas_frame(start="2023-01-01", days=120, seed=12), 0.08, seed=1)
    csv = tmp_path / "injected.csv"
    dt.to_training_csv(frame, csv)
    env = cli_env(trained_models, tmp_path)
    out = evaluate(env, SERVICE, csv)
    assert set(out) == FORECAST_KEYS | ANOMALY_KEYS
    assert out["anomaly_roc_auc"] > 0.9
    assert 0 <= out["anomaly_precision"] <= 1 and 0 <= out["anomaly_recall"] <= 1
    one = evaluate(env, SERVICE, csv, "--asset", "terega.occitanie")
    assert set(one) == FORECAST_KEYS | ANOMALY_KEYS


@pytest.mark.realdata
def test_real_data_train_writes_the_card_metrics(tmp_path: Path) -> None:
    card = train_on_real_data(tmp_path, SERVICE, dt.TRAIN_FILE).card
    assert len(card["series"]) == 15 and "grtgaz.auvergne-rhone-alpes" in card["series"]
    for family in ("ridge", "random_forest"):
        assert {"mae", "rmse", "r2", "mape"} <= set(
            card["metrics"]["forecast_by_candidate"][family]
        )
    assert card["metrics"]["forecast"]["r2"] > 0.95
    assert card["metrics"]["anomaly"]["roc_auc"] > 0.9
    assert card["thresholds"]["critique"] > card["thresholds"]["alerte"]
    assert set(card["clusters"]["kmeans"]) == set(card["series"])
