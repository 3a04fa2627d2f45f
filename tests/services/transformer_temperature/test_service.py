"""The transformer-temperature declaration scored as the runtime scores it (no server): the
window and asset checks, the forecasts of each origin, the level rule and its explanation, the
forecast points, per-asset settings, and several calls scored together."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.services.transformer_temperature.conftest import SERVICE
from tests.support.synthetic import ETT_COLUMNS, measurements, transformer_frame
from vigie.contract.batch import Batch
from vigie.contract.errors import ConfigError, Unprocessable
from vigie.contract.levels import Level
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call, score_calls
from vigie.settings import VigieSettings
from vigie_services.transformer_temperature import features as ft
from vigie_services.transformer_temperature import forecasting as fc
from vigie_services.transformer_temperature.service import (
    TransformerMeasurement,
    TransformerTemperatureService,
)

HISTORY = ft.HISTORY_HOURS
FRAME = transformer_frame(HISTORY + 120, seed=5, start="2018-05-01")


def rows(n: int, start: int = 0) -> list[TransformerMeasurement]:
    return [
        TransformerMeasurement.model_validate(m)
        for m in measurements(FRAME, slice(start, start + n))
    ]


def service_with(
    trained_models: Path, tmp_path: Path, config: dict | None = None
) -> TransformerTemperatureService:
    path = None
    if config is not None:
        path = tmp_path / "assets.json"
        path.write_text(json.dumps({SERVICE: config}))
    svc = TransformerTemperatureService(VigieSettings(asset_config=path))
    svc.bind(ModelStore(trained_models).load_current(SERVICE))
    return svc


def expected_forecasts(svc: TransformerTemperatureService, n: int, start: int = 0) -> np.ndarray:
    values = FRAME[ETT_COLUMNS].to_numpy()[start : start + n]
    return fc.forecast(svc.model.model, values)


def test_one_forecast_per_origin_about_its_row(trained_models: Path, tmp_path: Path) -> None:
    svc = service_with(trained_models, tmp_path)
    batch = Batch("ETTh1", rows(HISTORY + 4, start=9))
    outputs = svc.infer(batch)["oil_temperature_c"]
    assert outputs.shape == (HISTORY + 4, len(ft.HORIZONS))
    assert np.isnan(outputs[: HISTORY - 1]).all()  # history-only rows have no forecast

    scores = score_call(svc, batch)
    expected = expected_forecasts(svc, HISTORY + 4, start=9)
    assert list(scores.rows or []) == list(range(HISTORY - 1, HISTORY + 4))
    assert len(scores.items) == len(scores.levels) == 5
    for item, origin, want in zip(scores.items, batch.times[HISTORY - 1 :], expected, strict=True):
        forecasts = item["forecasts"]
        assert [f["horizon"] for f in forecasts] == ["h1", "h6", "h24"]
        assert [f["target_time"] for f in forecasts] == [
            origin + timedelta(hours=h) for h in ft.HORIZONS
        ]
        assert [f["oil_temperature_c"] for f in forecasts] == [round(float(v), 3) for v in want]
    points = scores.points
    assert points is not None and points.target == "OT"
    assert list(points.row) == [i for i in range(5) for _ in ft.HORIZONS]
    assert list(points.horizon) == ["h1", "h6", "h24"] * 5
    assert list(points.value) == expected.ravel().tolist()  # unrounded, as the model gave them
    assert list(points.time) == [f["target_time"] for i in scores.items for f in i["forecasts"]]


def test_level_rule_crossings_and_explanation(trained_models: Path, tmp_path: Path) -> None:
    n = HISTORY + 60
    values = expected_forecasts(service_with(trained_models, tmp_path), n)
    # thresholds inside the forecasts' range, so that every level occurs
    alerte, critique = (float(np.quantile(values, q)) for q in (0.4, 0.8))
    svc = service_with(
        trained_models, tmp_path, {"T1": {"alerte_c": alerte, "critique_c": critique}}
    )
    scores = score_call(svc, Batch("T1", rows(n)))
    assert set(scores.levels) == set(Level)
    for i, (item, level, row) in enumerate(zip(scores.items, scores.levels, values, strict=True)):
        crossings = []
        for f, v in zip(item["forecasts"], row, strict=True):
            want = (
                Level.CRITIQUE if v >= critique else Level.ALERTE if v >= alerte else Level.NORMAL
            )
            assert f["level"] is want
            if want is not Level.NORMAL:
                threshold = critique if want is Level.CRITIQUE else alerte
                crossings.append(
                    {"horizon": f["horizon"], "level": want, "threshold_c": threshold,
                     "forecast_c": f["oil_temperature_c"]}
                )  # fmt: skip
        assert item["crossings"] == crossings
        assert level == Level.highest(f["level"] for f in item["forecasts"])
        assert item["recommendation"].startswith("No action") == (level is Level.NORMAL)
        detail = scores.explain(i)
        peak = int(np.argmax(row))
        assert detail.value == row[peak] and detail.unit == "°C"
        assert detail.threshold == (critique if level is Level.CRITIQUE else alerte)
        assert f"h{ft.HORIZONS[peak]}" in detail.message
        assert ("below ALERTE" in detail.message) == (level is Level.NORMAL)


def test_configured_thresholds_override_the_cards(trained_models: Path, tmp_path: Path) -> None:
    card = service_with(trained_models, tmp_path).card_thresholds["ETTh1"]
    assert card.critique_c > card.alerte_c
    svc = service_with(
        trained_models, tmp_path, {"ETTh1": {"alerte_c": -60.0, "critique_c": -59.0}}
    )
    scores = score_call(svc, Batch("ETTh1", rows(HISTORY)))
    assert scores.levels == [Level.CRITIQUE]
    assert scores.explain(0).threshold == -59.0
    assert score_call(svc, Batch("ETTh2", rows(HISTORY))).explain(0).threshold == (
        svc.card_thresholds["ETTh2"].alerte_c  # the card's, for the asset not configured
    )


def test_unknown_asset_is_a_422_naming_the_asset(trained_models: Path, tmp_path: Path) -> None:
    svc = service_with(trained_models, tmp_path, {"T9": {"alerte_c": 70, "critique_c": 80}})
    with pytest.raises(Unprocessable) as caught:
        score_call(svc, Batch("NOPE-9", rows(HISTORY)))
    assert "ETTh1, ETTh2, T9" in str(caught.value)
    assert caught.value.details == [
        {"field": "body.asset_id", "message": "unknown asset", "type": "unknown_asset"}
    ]


@pytest.mark.parametrize(
    ("measured", "field", "kind"),
    [
        (lambda: rows(HISTORY - 1), "body.measurements", "too_short"),
        (
            lambda: rows(6) + rows(HISTORY, start=7),
            "body.measurements.6.timestamp",
            "not_consecutive",
        ),
        (lambda: rows(HISTORY)[::-1], "body.measurements.1.timestamp", "not_consecutive"),
    ],
    ids=["too short", "a gap", "newest first"],
)
def test_the_hourly_window_is_checked_first(
    trained_models: Path,
    tmp_path: Path,
    measured: Callable[[], list[TransformerMeasurement]],
    field: str,
    kind: str,
) -> None:
    svc = service_with(trained_models, tmp_path)
    with pytest.raises(Unprocessable) as caught:
        score_call(svc, Batch("ETTh1", measured()))
    assert [(d["field"], d["type"]) for d in caught.value.details] == [(field, kind)]
    assert "hourly" in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"alerte_c": 80, "critique_c": 80}, "critique_c must be above alerte_c"),
        ({"alerte_c": 80}, "T1.critique_c"),
        ({"alerte_c": 80, "critique_c": 900}, "T1.critique_c"),
        ({"alerte_c": 80, "critique_c": 90, "colour": "red"}, "T1.colour"),
    ],
)
def test_a_bad_asset_config_stops_start_up(tmp_path: Path, settings: dict, where: str) -> None:
    path = tmp_path / "assets.json"
    path.write_text(json.dumps({SERVICE: {"T1": settings}}))
    with pytest.raises(ConfigError, match=where):
        TransformerTemperatureService(VigieSettings(asset_config=path))


def test_calls_scored_together_answer_as_alone(trained_models: Path, tmp_path: Path) -> None:
    svc = service_with(trained_models, tmp_path)
    assert not svc.rows_independent  # a forecast reads the rows before its origin
    calls = [
        Batch("ETTh1", rows(HISTORY + 2)),
        Batch("NOPE", rows(HISTORY)),
        Batch("ETTh2", rows(HISTORY - 5)),
        Batch("ETTh2", rows(HISTORY, start=30)),
    ]
    together = score_calls(svc, calls)
    assert isinstance(together[1], Unprocessable) and isinstance(together[2], Unprocessable)
    for i in (0, 3):
        alone = score_call(svc, calls[i])
        got = together[i]
        assert not isinstance(got, Exception)
        assert (got.items, got.levels, list(got.rows or [])) == (
            alone.items, alone.levels, list(alone.rows or []),
        )  # fmt: skip
