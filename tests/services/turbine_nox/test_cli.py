"""`vigie train` / `vigie evaluate` for turbine-nox (design.md section 7); the refusals every
service shares are in ``tests/services/test_cli_common.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.turbine_nox.conftest import SERVICE
from tests.services.turbine_nox.synthetic import turbine_frame
from tests.support.cli import cli_env, evaluate, train_on_real_data

KEYS = {"nox_mae", "nox_rmse", "nox_r2", "co_mae", "co_r2"}


def test_evaluate_prints_static_and_online_keys(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "later.csv"
    later = turbine_frame(rows_per_year=300, years=(2015,), seed=5)
    later["NOX"] -= 5.0  # drifted again
    later.to_csv(csv, index=False)
    out = evaluate(cli_env(trained_models, tmp_path), SERVICE, csv)
    assert set(out) == KEYS | {f"{k}_online" for k in KEYS}
    assert all(isinstance(v, float) for v in out.values())
    assert out["nox_mae_online"] < out["nox_mae"]  # the replay learns the drift


@pytest.mark.realdata
def test_real_data_card_holds_static_and_online_validation(tmp_path: Path) -> None:
    card = train_on_real_data(tmp_path, SERVICE, "turbine_nox/train.csv").card
    m = card["metrics"]["validation_2014"]
    assert KEYS | {f"{k}_online" for k in KEYS} <= set(m)
    assert card["validation"]["train_years"] == [2011, 2012, 2013]
    # the online recalibration is what makes the PEMS usable on a drifted year
    assert m["nox_r2_online"] > 0.7 and m["nox_r2_online"] > m["nox_r2"]
    assert m["nox_mae_online"] < card["baselines"]["persistence_24_rows"]["nox_mae"]
    assert card["training_time_s"] < 120
