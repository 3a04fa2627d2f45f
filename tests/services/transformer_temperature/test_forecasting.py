"""Tests of the transformer-temperature forecasting core.

Everything runs on small synthetic series except the ``realdata`` test, which trains on the
real ETT files and skips when they are not available.
"""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from vigie_services.transformer_temperature import data
from vigie_services.transformer_temperature import evaluation as ev
from vigie_services.transformer_temperature import features as ft
from vigie_services.transformer_temperature import forecasting as fc
from vigie_services.transformer_temperature import training as tr

N_ROWS = 800  # validation slice of 160 rows -> 65 scored origins per asset


def synthetic_series(n: int, seed: int, gain: float = 1.0) -> pd.DataFrame:
    """Hourly loads with a daily and a 5-day cycle; OT relaxes towards a load-driven level."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n)
    load = (
        10.0
        + 4.0 * np.sin(2 * np.pi * (hours - 8) / 24)
        + 3.0 * np.sin(2 * np.pi * hours / 120 + seed)
        + rng.normal(0.0, 0.3, n)
    )
    loads = np.column_stack(
        [load * share + rng.normal(0.0, 0.2, n) for share in (1.0, 0.3, 0.8, 0.2, 0.4, 0.1)]
    )
    ot = np.empty(n)
    ot[0] = gain * load[0] + 5.0
    for i in range(1, n):  # first-order thermal lag behind the load of two hours before
        ot[i] = ot[i - 1] + 0.08 * (gain * load[max(i - 2, 0)] + 5.0 - ot[i - 1])
    ot += rng.normal(0.0, 0.05, n)
    index = pd.date_range("2020-01-01", periods=n, freq="h", name="date")
    return pd.DataFrame(np.column_stack([loads, ot]), index=index, columns=list(ft.COLUMNS))


@pytest.fixture(scope="module")
def series() -> dict[str, pd.DataFrame]:
    return {"A": synthetic_series(N_ROWS, 1), "B": synthetic_series(N_ROWS, 2, gain=2.0)}


@pytest.fixture(scope="module")
def result(series: dict[str, pd.DataFrame]) -> tr.TrainingResult:
    return tr.fit(series)


def test_interface_constants() -> None:
    assert ft.HORIZONS == (1, 6, 24)
    assert ft.COLUMNS == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
    assert 24 <= ft.HISTORY_HOURS <= 96


def test_shapes_and_number_of_origins(
    series: dict[str, pd.DataFrame], result: tr.TrainingResult
) -> None:
    values = series["A"].to_numpy()[:200]
    origins = 200 - ft.HISTORY_HOURS + 1
    features = ft.forecast_origins(values)
    assert features.shape == (origins, len(ft.FEATURES))
    assert np.isfinite(features).all()
    assert fc.forecast(result.model, values).shape == (origins, len(ft.HORIZONS))
    assert fc.persistence(values).shape == (origins, len(ft.HORIZONS))
    # persistence repeats the OT of each origin row
    np.testing.assert_array_equal(fc.persistence(values)[:, 2], values[ft.HISTORY_HOURS - 1 :, 6])


def test_features_of_an_origin_only_use_its_window(series: dict[str, pd.DataFrame]) -> None:
    values = series["A"].to_numpy()[:150]
    last = ft.forecast_origins(values)[-1]
    np.testing.assert_allclose(ft.forecast_origins(values[-ft.HISTORY_HOURS :])[0], last)


def test_single_origin_forecast(series: dict[str, pd.DataFrame], result: tr.TrainingResult) -> None:
    values = series["B"].to_numpy()[-ft.HISTORY_HOURS :]
    prediction = fc.forecast(result.model, values)
    assert prediction.shape == (1, len(ft.HORIZONS))
    assert np.isfinite(prediction).all()


def test_too_few_rows_is_rejected(series: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="HISTORY_HOURS"):
        ft.forecast_origins(series["A"].to_numpy()[: ft.HISTORY_HOURS - 1])
    with pytest.raises(ValueError, match="shape"):
        fc.persistence(series["A"].to_numpy()[:, :6])


def test_fit_reports_every_asset_and_horizon(result: tr.TrainingResult) -> None:
    keys = {"mae", "rmse", "r2", "persistence_mae", "persistence_rmse", "persistence_r2"}
    assert set(result.metrics) == {"A", "B"}
    for per_horizon in result.metrics.values():
        assert set(per_horizon) == {f"h{h}" for h in ft.HORIZONS}
        for scores in per_horizon.values():
            assert set(scores) == keys
            assert all(np.isfinite(v) for v in scores.values())
    assert set(result.thresholds) == {"A", "B"}
    for limits in result.thresholds.values():
        assert limits["critique_c"] > limits["alerte_c"]
        assert limits["alerte_c"] * 2 == round(limits["alerte_c"] * 2)
    assert result.features == ft.FEATURES
    assert result.hyperparameters["history_hours"] == ft.HISTORY_HOURS
    candidates = result.hyperparameters["candidates"]
    assert isinstance(candidates, dict)
    assert {"ridge", "hist_gradient_boosting"} <= set(candidates)
    assert result.hyperparameters["chosen_candidate"] in candidates


def test_validation_is_time_ordered_with_a_gap(result: tr.TrainingResult) -> None:
    assets = result.validation["assets"]
    assert isinstance(assets, dict)
    for info in assets.values():
        gap = pd.Timestamp(info["validation_start"]) - pd.Timestamp(info["train_end"])
        assert gap > pd.Timedelta(hours=tr.GAP_HOURS)
        assert info["train_rows"] + info["validation_rows"] + tr.GAP_HOURS == N_ROWS


def test_model_beats_persistence_on_learnable_dynamics(result: tr.TrainingResult) -> None:
    for asset, per_horizon in result.metrics.items():
        for horizon, scores in per_horizon.items():
            assert scores["mae"] < scores["persistence_mae"], (asset, horizon, scores)


def test_evaluate_keys_and_pickling(
    tmp_path: Path, series: dict[str, pd.DataFrame], result: tr.TrainingResult
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(result.model, path)
    model = joblib.load(path)
    later = synthetic_series(300, 7)
    scores = ev.evaluate(model, later)
    assert set(scores) == {"h1", "h6", "h24"}
    for values in scores.values():
        assert set(values) == {"mae", "rmse", "r2", "persistence_mae"}
    np.testing.assert_allclose(
        fc.forecast(model, later.to_numpy()), fc.forecast(result.model, later.to_numpy())
    )
    with pytest.raises(ValueError, match="rows to score"):
        ev.evaluate(model, later.iloc[: ft.HISTORY_HOURS])


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.reset_index().to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


def test_load_series_round_trip_sorts_rows(tmp_path: Path) -> None:
    frame = synthetic_series(50, 3)
    loaded = data.load_series(_write_csv(tmp_path / "ok.csv", frame.iloc[::-1]))
    assert isinstance(loaded.index, pd.DatetimeIndex)
    assert list(loaded.columns) == list(ft.COLUMNS)
    assert loaded.index.is_monotonic_increasing
    np.testing.assert_allclose(loaded.to_numpy(), frame.to_numpy())


def test_load_series_rejects_a_gap(tmp_path: Path) -> None:
    frame = synthetic_series(50, 3).drop(pd.Timestamp("2020-01-01 10:00"))
    with pytest.raises(ValueError, match=r"not hourly.*2020-01-01 09:00:00.*2020-01-01 11:00:00"):
        data.load_series(_write_csv(tmp_path / "gap.csv", frame))


def test_load_series_names_missing_columns(tmp_path: Path) -> None:
    frame = synthetic_series(50, 3).drop(columns=["OT", "LULL"])
    with pytest.raises(ValueError, match=r"missing column.*LULL, OT"):
        data.load_series(_write_csv(tmp_path / "cols.csv", frame))


def _data_dir() -> Path:
    configured = os.environ.get("VIGIE_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.mark.realdata
def test_real_data_beats_persistence_at_every_horizon() -> None:
    directory = _data_dir() / "transformer"
    if not directory.is_dir():
        pytest.skip(f"real data directory not found: {directory}")
    series = {
        asset: data.load_series(directory / f"{asset}_train.csv") for asset in ("ETTh1", "ETTh2")
    }
    result = tr.fit(series)
    for asset in series:
        for horizon, scores in result.metrics[asset].items():
            assert scores["mae"] < scores["persistence_mae"], (asset, horizon, scores)


def test_the_pickled_model_keeps_the_class_path_models_were_trained_with(
    result: tr.TrainingResult,
) -> None:
    # joblib artifacts name the class by module and name: models trained before must still load
    model = result.model
    assert type(model).__module__ == "vigie_services.transformer_temperature.forecasting"
    assert type(model).__qualname__ == "DeltaForecaster"
    assert set(vars(model)) == {
        "family",
        "estimators",
        "history_hours",
        "horizons",
        "feature_names",
    }
