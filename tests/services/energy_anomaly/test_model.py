"""Unit tests of the energy-anomaly model code (no server)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.services.energy_anomaly.anomalies import KINDS, LATER, request, with_anomaly
from tests.services.energy_anomaly.synthetic import gas_frame
from vigie.contract.batch import Batch
from vigie.contract.service import MeasurementBase
from vigie_services.energy_anomaly import clustering, training
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc
from vigie_services.energy_anomaly.service import DayMeasurement, EnergyAnomalyService


def _score(model: md.EnergyModel, body: dict) -> sc.Scores:
    ms = [DayMeasurement.model_validate(m) for m in body["measurements"]]
    return sc.score(model, body["asset_id"], EnergyAnomalyService.series_input(Batch("x", ms)))


def test_series_ids_are_ascii_slugs() -> None:
    assert dt.series_id("GRTgaz", "auvergne-rhône-alpes") == "grtgaz.auvergne-rhone-alpes"
    assert dt.series_id("Teréga", "occitanie") == "terega.occitanie"
    assert dt.series_id("GRTgaz", "île-de-france") == "grtgaz.ile-de-france"
    assert (
        dt.series_id("GRTgaz", "provence-alpes-côte d'azur") == "grtgaz.provence-alpes-cote-d-azur"
    )


def test_french_holidays_include_the_easter_based_ones() -> None:
    assert dt.easter(2024) == date(2024, 3, 31)
    assert dt.easter(2023) == date(2023, 4, 9)
    h = dt.french_holidays(2023)
    assert {date(2023, 4, 10), date(2023, 5, 18), date(2023, 5, 29)} <= h  # Easter Mon, Asc., Whit
    assert {date(2023, 1, 1), date(2023, 7, 14), date(2023, 11, 11), date(2023, 12, 25)} <= h
    assert len(h) == 11
    assert dt.is_bridge(date(2023, 5, 19))  # Friday after Ascension Thursday
    assert not dt.is_holiday(date(2023, 5, 19))


@pytest.mark.parametrize(
    ("score", "quality", "level"),
    [
        (4.99, False, "NORMAL"),
        (5.0, False, "ALERTE"),
        (7.99, False, "ALERTE"),
        (8.0, False, "CRITIQUE"),
        (100.0, False, "CRITIQUE"),
        (0.0, True, "ALERTE"),
        (8.0, True, "CRITIQUE"),
    ],
)
def test_level_boundaries(score: float, quality: bool, level: str) -> None:
    assert sc.level_of(score, alerte=5.0, critique=8.0, data_quality=quality) == level


def test_inject_anomalies_marks_every_kind() -> None:
    frame = gas_frame(days=200, seed=1)
    out = dt.inject_anomalies(frame, rate=0.2, seed=0)
    assert set(out["anomaly_kind"]) - {""} == set(dt.INJECTED_KINDS)
    assert (out["is_anomaly"] == (out["anomaly_kind"] != "").astype(int)).all()
    missing = out[out["anomaly_kind"] == "missing_hours"]
    assert missing[list(dt.HOURS)].isna().any(axis=1).all()
    untouched = out["is_anomaly"] == 0
    pd.testing.assert_frame_equal(
        out.loc[untouched, list(dt.HOURS)], frame.loc[untouched, list(dt.HOURS)]
    )
    first_days = out.groupby("series").head(14)
    assert first_days["is_anomaly"].sum() == 0
    again = dt.inject_anomalies(frame, rate=0.2, seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_a_normal_day_is_normal(energy_model: md.EnergyModel) -> None:
    s = _score(energy_model, request())
    assert len(s.levels) == 1
    assert s.levels == ["NORMAL"] and s.kinds == [[]]
    assert abs(s.actual[0] - s.forecast[0]) / s.actual[0] < 0.15


@pytest.mark.parametrize("case", list(KINDS))
def test_each_injected_kind_is_flagged(energy_model: md.EnergyModel, case: str) -> None:
    s = _score(energy_model, with_anomaly(case))
    assert s.levels[0] in ("ALERTE", "CRITIQUE"), (case, s.score, energy_model.alerte)
    assert KINDS[case] in s.kinds[0], (case, s.kinds)


def test_missing_hours_are_filled_and_counted(energy_model: md.EnergyModel) -> None:
    s = _score(energy_model, with_anomaly("missing_hours"))
    assert s.n_missing[0] == 3
    assert np.isfinite(s.score).all() and np.isfinite(s.forecast).all()


def test_measurement_schema_rejects_bad_days() -> None:
    good = request()["measurements"][0]
    DayMeasurement.model_validate(good)
    assert issubclass(DayMeasurement, MeasurementBase)
    for bad in (
        {**good, "hourly_mwh": good["hourly_mwh"][:23]},
        {**good, "hourly_mwh": [-1.0, *good["hourly_mwh"][1:]]},
        {**good, "daily_mwh": -5.0},
        {**good, "colour": "red"},
    ):
        with pytest.raises(ValueError):
            DayMeasurement.model_validate(bad)


def test_evaluate_gives_the_design_keys(energy_model: md.EnergyModel) -> None:
    plain = training.evaluate(energy_model, LATER)
    assert set(plain) == {"forecast_mae", "forecast_rmse", "forecast_r2", "forecast_mape"}
    assert plain["forecast_r2"] > 0.9
    injected = dt.inject_anomalies(LATER, rate=0.1, seed=2)
    out = training.evaluate(energy_model, injected)
    assert set(out) == set(plain) | {"anomaly_roc_auc", "anomaly_precision", "anomaly_recall"}
    assert out["anomaly_roc_auc"] > 0.9


def test_clusters_cover_every_series(energy_model: md.EnergyModel) -> None:
    c = energy_model.clusters
    series = set(energy_model.series)
    assert set(c["kmeans"]["assignments"]) == series == set(c["dbscan"]["assignments"])
    assert all(len(cl["centroid"]) == 24 for cl in c["kmeans"]["clusters"])
    assert c["dbscan"]["parameters"]["eps"] > 0


def test_clustering_separates_distinct_profiles() -> None:
    flat = np.ones(24)
    peaked = np.r_[np.full(12, 0.5), np.full(12, 1.5)]
    profiles = {f"a{i}": flat + 0.01 * i for i in range(3)}
    profiles |= {f"b{i}": peaked + 0.01 * i for i in range(3)}
    out = clustering.cluster_profiles(profiles)
    km = out["kmeans"]["assignments"]
    assert out["kmeans"]["parameters"]["n_clusters"] == 2
    assert len({km["a0"], km["a1"], km["a2"]}) == 1 and km["a0"] != km["b0"]
    db = out["dbscan"]["assignments"]
    assert db["a0"] == db["a2"] != db["b1"]
