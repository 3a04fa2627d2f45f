"""``vigie train`` / ``vigie evaluate`` refusals every prediction service shares (design.md
section 7): what a user gets for data the command cannot use. The metrics each service's
``evaluate`` prints are its domain: ``tests/services/<service>/test_cli.py``."""

from __future__ import annotations

from pathlib import Path

from tests.contract.cases import Case
from tests.support.cli import assert_evaluate_refuses, cli_env
from tests.support.serving import vigie

# A CSV without the columns the service reads, and what the refusal must name.
WITHOUT_THE_COLUMNS = {
    "solar-flare": ("date,sunspot_number\n2018-01-01,12\n", "n_C_flares_today"),
    "gamma-classifier": (
        "fLength,fWidth,fSize,fConc,fConc1,fAsym,fM3Long,fM3Trans,fDist,class\n"
        "28.8,16.0,2.6,0.39,0.2,27.7,22.0,-8.2,81.9,g\n",
        "fAlpha",
    ),
    "transformer-temperature": ("date,OT\n2018-01-01 00:00:00,3.0\n", "HUFL"),
    "turbine-nox": ("AT,NOX\n10,60\n", "TIT"),
    "energy-anomaly": ("date,région\n2023-01-01,bretagne\n", "00:00"),
}


def test_evaluate_rejects_a_csv_without_the_columns(
    prediction_case: Case, case_models: Path, tmp_path: Path
) -> None:
    text, says = WITHOUT_THE_COLUMNS[prediction_case.service]
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    env = cli_env(case_models, tmp_path / "var")
    assert_evaluate_refuses(env, prediction_case.service, csv, says)


def test_train_without_data_says_where_it_looked(prediction_case: Case, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "models", tmp_path / "var", VIGIE_DATA_DIR=str(tmp_path / "nowhere"))
    done = vigie(env, "train", prediction_case.service)
    assert done.returncode == 1, done.stderr
    assert str(tmp_path / "nowhere") in done.stderr
