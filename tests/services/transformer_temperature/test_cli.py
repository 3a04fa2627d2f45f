"""`vigie train` / `vigie evaluate` for transformer-temperature (design.md section 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import real_data_dir
from tests.services.transformer_temperature.conftest import SERVICE
from tests.support.serving import vigie
from tests.support.synthetic import transformer_frame

HORIZON_KEYS = {"mae", "rmse", "r2", "persistence_mae"}


def test_evaluate_prints_one_json_object_per_design(tmp_path: Path, trained_models: Path) -> None:
    frame = transformer_frame(400, seed=11, start="2018-06-01")
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    csv = tmp_path / "later.csv"
    frame.to_csv(csv, index=False)
    env = {**os.environ, "VIGIE_MODELS_DIR": str(trained_models), "VIGIE_VAR_DIR": str(tmp_path)}
    done = vigie(env, "evaluate", SERVICE, "--data", str(csv), "--asset", "ETTh1")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"h1", "h6", "h24"}
    for h in out.values():
        assert set(h) >= HORIZON_KEYS
        assert all(isinstance(v, float) for v in h.values())


def test_evaluate_rejects_a_csv_without_the_columns(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("date,OT\n2018-01-01 00:00:00,3.0\n")
    env = {**os.environ, "VIGIE_MODELS_DIR": str(trained_models), "VIGIE_VAR_DIR": str(tmp_path)}
    done = vigie(env, "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "HUFL" in done.stderr


def test_train_without_data_says_where_it_looked(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(tmp_path / "nowhere"),
        "VIGIE_MODELS_DIR": str(tmp_path),
    }
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 1
    assert "nowhere" in done.stderr


@pytest.mark.realdata
def test_real_data_train_then_evaluate_beats_persistence(tmp_path: Path) -> None:
    data = real_data_dir()
    if not (data / "transformer" / "ETTh1_train.csv").is_file():
        pytest.skip(f"real data directory not found: {data}/transformer (set VIGIE_DATA_DIR)")
    env = {**os.environ, "VIGIE_DATA_DIR": str(data), "VIGIE_MODELS_DIR": str(tmp_path / "models")}
    trained = vigie(env, "train", SERVICE)
    assert trained.returncode == 0, trained.stderr
    card = json.loads(vigie(env, "models", "show", SERVICE).stdout)
    for asset in ("ETTh1", "ETTh2"):
        for h in ("h1", "h6", "h24"):
            m = card["metrics"][asset][h]
            assert m["mae"] < m["persistence_mae"], (asset, h, m)
    done = vigie(
        env, "evaluate", SERVICE, "--data", str(data / "transformer" / "ETTh1_train.csv"),
        "--asset", "ETTh1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"h1", "h6", "h24"}
