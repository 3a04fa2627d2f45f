"""`vigie train` / `vigie evaluate` for transformer-temperature (design.md section 7); the
refusals every service shares are in ``tests/services/test_cli_common.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.transformer_temperature.conftest import SERVICE
from tests.support.cli import cli_env, evaluate, real_data_file, train_on_real_data
from tests.support.synthetic import transformer_frame

HORIZON_KEYS = {"mae", "rmse", "r2", "persistence_mae"}
REAL_FILE = "transformer/ETTh1_train.csv"


def test_evaluate_prints_one_json_object_per_design(tmp_path: Path, trained_models: Path) -> None:
    frame = transformer_frame(400, seed=11, start="2018-06-01")
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    csv = tmp_path / "later.csv"
    frame.to_csv(csv, index=False)
    out = evaluate(cli_env(trained_models, tmp_path), SERVICE, csv, "--asset", "ETTh1")
    assert set(out) == {"h1", "h6", "h24"}
    for h in out.values():
        assert set(h) >= HORIZON_KEYS
        assert all(isinstance(v, float) for v in h.values())


@pytest.mark.realdata
def test_real_data_train_then_evaluate_beats_persistence(tmp_path: Path) -> None:
    trained = train_on_real_data(tmp_path, SERVICE, REAL_FILE)
    for asset in ("ETTh1", "ETTh2"):
        for h in ("h1", "h6", "h24"):
            m = trained.card["metrics"][asset][h]
            assert m["mae"] < m["persistence_mae"], (asset, h, m)
    out = evaluate(trained.env, SERVICE, real_data_file(REAL_FILE), "--asset", "ETTh1")
    assert set(out) == {"h1", "h6", "h24"}
