"""turbine-nox's training: candidates validated forward in time, the offline replay of the online
correction (the serving corrector, row by row), ``vigie evaluate``'s keys, the card's fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.services.turbine_nox.synthetic import turbine_frame, write_turbine_data
from vigie.models.training import run_training
from vigie.settings import VigieSettings
from vigie_services.turbine_nox import pems, training
from vigie_services.turbine_nox.corrector import Corrector
from vigie_services.turbine_nox.data import load_frame
from vigie_services.turbine_nox.pems import PemsModel
from vigie_services.turbine_nox.service import AssetLimits, TurbineNoxService


@pytest.fixture(scope="module")
def fitted() -> training.TrainingResult:
    return training.fit(turbine_frame(rows_per_year=400))


def test_fit_compares_both_families_and_validates_on_the_last_year(
    fitted: training.TrainingResult,
) -> None:
    cands = fitted.hyperparameters["candidates"]
    assert set(cands) == {"ridge", "hist_gradient_boosting"}
    assert fitted.validation["validation_year"] == 2014
    assert fitted.validation["train_years"] == [2011, 2012, 2013]
    m = fitted.metrics["validation_2014"]
    # the drift of the last year hurts the static model; the replay corrects it
    assert m["nox_mae_online"] < m["nox_mae"]
    assert m["nox_r2_online"] > 0.6


def test_evaluate_keys_and_replay_uses_the_same_corrector(fitted: training.TrainingResult) -> None:
    frame = turbine_frame(rows_per_year=150, years=(2015,), seed=3)
    out = training.evaluate(fitted.model, frame)
    keys = {"nox_mae", "nox_rmse", "nox_r2", "co_mae", "co_r2"}
    assert set(out) == keys | {f"{k}_online" for k in keys}
    # replay by hand with the serving corrector: identical
    x = frame[list(pems.INPUTS)].to_numpy()
    static = fitted.model.static(x)
    c = Corrector.for_target("NOX")
    z = fitted.model.terms("NOX", x, static["NOX"])
    state, got = None, []
    for t in range(len(x)):
        if t >= training.DELAY_ROWS:
            i = t - training.DELAY_ROWS
            state, _ = c.learn(state, z[i], float(static["NOX"][i]), float(frame.NOX.iloc[i]))
        got.append(c.corrected(state, z[t : t + 1], static["NOX"][t : t + 1])[0])
    replayed = training.replay(fitted.model, x, {"NOX": frame.NOX.to_numpy()})["NOX"]
    assert np.allclose(replayed, got)
    # nothing is known for the first DELAY_ROWS rows: static values
    assert np.allclose(replayed[: training.DELAY_ROWS], static["NOX"][: training.DELAY_ROWS])


def test_fit_needs_two_years() -> None:
    with pytest.raises(ValueError, match="2 years"):
        training.fit(turbine_frame(rows_per_year=300, years=(2014,)))


def test_train_states_the_card_and_leaves_timing_to_the_runtime(tmp_path: Path) -> None:
    write_turbine_data(tmp_path, rows_per_year=300)
    service = TurbineNoxService(VigieSettings(asset_config=None))
    messages: list[str] = []
    trained = service.train(tmp_path, messages.append)
    assert isinstance(trained.model, PemsModel)
    assert type(trained.model).__module__ == "vigie_services.turbine_nox.pems"  # pickled path
    card = trained.card
    assert "title" not in card and "training_time_s" not in card  # the runtime's
    (data,) = card["training_data"]
    assert data["path"] == str(tmp_path / "turbine_nox" / "train.csv") and data["rows"] == 1200
    assert data["time_range"] == {"start": "2011", "end": "2014"}
    assert [f["name"] for f in card["features"]] == list(pems.INPUTS)
    assert card["thresholds"]["defaults"] == AssetLimits().model_dump()
    assert {p.name for p in card["compiled"].parts} == set(pems.TARGETS)
    assert any(m.startswith("reading ") for m in messages)
    full = run_training(service, tmp_path, messages.append).card
    assert full["title"] == service.title and full["training_time_s"] > 0


def test_train_without_a_year_column_says_so(tmp_path: Path) -> None:
    write_turbine_data(tmp_path, rows_per_year=100)
    csv = tmp_path / "turbine_nox" / "train.csv"
    load_frame(csv).drop(columns=["year"]).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="missing column 'year'"):
        TurbineNoxService(VigieSettings(asset_config=None)).train(tmp_path, lambda _m: None)


def test_a_csv_with_a_bad_value_names_its_row(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    frame = turbine_frame(rows_per_year=5, years=(2014,))
    frame["TIT"] = frame["TIT"].astype(object)
    frame.loc[3, "TIT"] = "n/a"
    frame.to_csv(csv, index=False)
    with pytest.raises(ValueError, match="data row 4"):
        load_frame(csv)
