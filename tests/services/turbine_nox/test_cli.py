"""`vigie train` / `vigie evaluate` for turbine-nox (design.md section 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import real_data_dir
from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import turbine_frame
from tests.support.serving import vigie

KEYS = {"nox_mae", "nox_rmse", "nox_r2", "co_mae", "co_r2"}


def _env(models: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VIGIE_MODELS_DIR": str(models), "VIGIE_VAR_DIR": str(tmp_path)}


def test_evaluate_prints_static_and_online_keys(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "later.csv"
    later = turbine_frame(rows_per_year=300, years=(2015,), seed=5)
    later["NOX"] -= 5.0  # drifted again
    later.to_csv(csv, index=False)
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == KEYS | {f"{k}_online" for k in KEYS}
    assert all(isinstance(v, float) for v in out.values())
    assert out["nox_mae_online"] < out["nox_mae"]  # the replay learns the drift


def test_evaluate_rejects_a_csv_without_the_columns(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("AT,NOX\n10,60\n")
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "TIT" in done.stderr


def test_train_without_data_says_where_it_looked(tmp_path: Path) -> None:
    env = {**_env(tmp_path, tmp_path), "VIGIE_DATA_DIR": str(tmp_path / "nowhere")}
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 1
    assert "nowhere" in done.stderr


@pytest.mark.realdata
def test_real_data_card_holds_static_and_online_validation(tmp_path: Path) -> None:
    data = real_data_dir()
    csv = data / "turbine_nox" / "train.csv"
    if not csv.is_file():
        pytest.skip(f"real data not found: {csv} (set VIGIE_DATA_DIR)")
    env = {**_env(tmp_path / "models", tmp_path), "VIGIE_DATA_DIR": str(data)}
    trained = vigie(env, "train", SERVICE)
    assert trained.returncode == 0, trained.stderr
    card = json.loads(vigie(env, "models", "show", SERVICE).stdout)
    m = card["metrics"]["validation_2014"]
    assert KEYS | {f"{k}_online" for k in KEYS} <= set(m)
    assert card["validation"]["train_years"] == [2011, 2012, 2013]
    # the online recalibration is what makes the PEMS usable on a drifted year
    assert m["nox_r2_online"] > 0.7 and m["nox_r2_online"] > m["nox_r2"]
    assert m["nox_mae_online"] < card["baselines"]["persistence_24_rows"]["nox_mae"]
    assert card["training_time_s"] < 120
