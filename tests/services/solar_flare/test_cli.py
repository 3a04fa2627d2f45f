"""`vigie train` / `vigie evaluate` for solar-flare (design.md section 7), and the service
scored in-process (per-asset thresholds, domain 422s)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import real_data_dir
from tests.services.solar_flare.conftest import SERVICE, simulation
from tests.services.solar_flare.synthetic import simulate, to_csv
from tests.support.serving import vigie
from vigie.contract.batch import Batch, Scores
from vigie.contract.errors import ConfigError, Unprocessable
from vigie.contract.levels import Level
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services.solar_flare.service import FlareDay, SolarFlareService

CLASS_KEYS = {"c", "m", "x"}
METRIC_KEYS = {"tss", "hss", "roc_auc", "brier_skill_score", "persistence_tss"}


def _env(models: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VIGIE_MODELS_DIR": str(models), "VIGIE_VAR_DIR": str(tmp_path)}


def test_evaluate_prints_the_design_keys(tmp_path: Path, trained_models: Path) -> None:
    later = simulate(300, seed=11).table  # another stretch of synthetic activity
    csv = to_csv(later, tmp_path / "later.csv")
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == CLASS_KEYS
    for metrics in out.values():
        assert set(metrics) == METRIC_KEYS
        assert all(isinstance(v, float) for v in metrics.values()), metrics


def test_evaluate_on_days_without_x_gives_null_auc(tmp_path: Path, trained_models: Path) -> None:
    quiet = simulation().table.iloc[:200].copy()
    quiet[["flare_X_next_24h", "n_X_flares_next_24h"]] = 0
    csv = to_csv(quiet, tmp_path / "quiet.csv")
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 0, done.stderr
    assert "NaN" not in done.stdout
    out = json.loads(done.stdout)
    assert out["x"]["roc_auc"] is None and out["x"]["tss"] is None
    assert isinstance(out["m"]["roc_auc"], float)


def test_evaluate_rejects_a_csv_without_the_columns(tmp_path: Path, trained_models: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("date,sunspot_number\n2018-01-01,12\n")
    done = vigie(_env(trained_models, tmp_path), "evaluate", SERVICE, "--data", str(csv))
    assert done.returncode == 1
    assert "n_C_flares_today" in done.stderr


def test_train_without_data_says_where_it_looked(tmp_path: Path) -> None:
    env = {**_env(tmp_path / "models", tmp_path), "VIGIE_DATA_DIR": str(tmp_path / "nowhere")}
    done = vigie(env, "train", SERVICE)
    assert done.returncode == 1
    assert "nowhere" in done.stderr


# -- the service in-process ---------------------------------------------------------------------
def _service(trained_models: Path, tmp_path: Path, config: dict | None = None) -> SolarFlareService:
    asset_config = None
    if config is not None:
        asset_config = tmp_path / "assets.json"
        asset_config.write_text(json.dumps({SERVICE: config}))
    settings = VigieSettings(models_dir=trained_models, var_dir=tmp_path, asset_config=asset_config)
    svc = SolarFlareService(settings)
    svc.bind(ModelStore(trained_models).load_current(SERVICE))
    return svc


def _days(indices: range) -> list[FlareDay]:
    sim = simulation()
    return [
        FlareDay.model_validate({"timestamp": sim.timestamp(i), "summary": sim.summary_json(i)})
        for i in indices
    ]


def _scores(svc: SolarFlareService, asset_id: str, days: list[FlareDay]) -> Scores:
    return score_call(svc, Batch(asset_id, days))


def test_asset_config_overrides_the_card_thresholds(trained_models: Path, tmp_path: Path) -> None:
    strict = {"alerte_probability_m_or_above": 1.0, "critique_probability_x": 1.0}
    loose = {"alerte_probability_m_or_above": 0.001, "critique_probability_x": 0.9999}
    svc = _service(trained_models, tmp_path, {"QUIET": strict, "LOOSE": loose})
    days = _days(range(100, 160))
    default = _scores(svc, "SUN", days)
    assert set(_scores(svc, "QUIET", days).levels) == {Level.NORMAL}
    assert set(_scores(svc, "LOOSE", days).levels) == {Level.ALERTE}
    card = svc.model.card.thresholds
    points = default.points
    assert points is not None and list(points.row) == list(range(len(days)))
    for i, item in enumerate(default.items):
        detail = default.explain(i)
        assert detail.unit == "probability"
        assert detail.threshold in {
            card["alerte_probability_m_or_above"],
            card["critique_probability_x"],
        }
        assert points.target == "flare_M_or_above_next_24h" and points.horizon[i] == "24h"
        assert points.value[i] == item["probability_m_or_above"]
        assert (points.time[i] - days[i].timestamp).days == 1


def test_an_asset_may_override_one_threshold(trained_models: Path, tmp_path: Path) -> None:
    svc = _service(trained_models, tmp_path, {"X-ONLY": {"critique_probability_x": 1.0}})
    days = _days(range(26, 700, 3))
    default, x_only = _scores(svc, "SUN", days), _scores(svc, "X-ONLY", days)
    t_m = svc.model.card.thresholds["alerte_probability_m_or_above"]
    assert Level.CRITIQUE in default.levels and Level.CRITIQUE not in x_only.levels
    for i, item in enumerate(x_only.items):  # ALERTE still at the card's P(>=M) threshold
        want = Level.ALERTE if item["probability_m_or_above"] >= t_m else Level.NORMAL
        assert x_only.levels[i] is want
        assert x_only.explain(i).threshold == t_m


def test_bad_asset_config_fails_at_start(trained_models: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"solar-flare\.SUN\.alerte_probability_m_or_above"):
        _service(trained_models, tmp_path, {"SUN": {"alerte_probability_m_or_above": 2}})
    with pytest.raises(ConfigError, match=r"solar-flare\.SUN\.critique_probability"):
        _service(trained_models, tmp_path, {"SUN": {"critique_probability": 0.2}})


def test_domain_errors_are_collected_over_the_batch(trained_models: Path, tmp_path: Path) -> None:
    svc = _service(trained_models, tmp_path)
    sim = simulation()
    raw = sim.raw_json(200)
    raw["flares"].append({"goes_class": "M1.0", "peak_time": sim.timestamp(201)})
    summary = sim.summary_json(210)
    summary["max_xray_flux_last_3d"] = summary["max_xray_flux_today"] / 2
    days = [
        FlareDay.model_validate({"timestamp": sim.timestamp(200), "raw": raw}),
        FlareDay.model_validate({"timestamp": sim.timestamp(210), "summary": summary}),
    ]
    with pytest.raises(Unprocessable) as info:
        _scores(svc, "SUN", days)
    fields = [d["field"] for d in info.value.details]
    assert fields[0] == f"body.measurements.0.raw.flares.{len(raw['flares']) - 1}.peak_time"
    assert "body.measurements.1.summary.max_xray_flux_last_3d" in fields


# -- the real data ------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_data_train_beats_persistence_then_evaluate(tmp_path: Path) -> None:
    data = real_data_dir()
    path = data / "solar_flare" / "daily_train.csv"
    if not path.is_file():
        pytest.skip(f"real data file not found: {path} (set VIGIE_DATA_DIR)")
    env = {**_env(tmp_path / "models", tmp_path), "VIGIE_DATA_DIR": str(data)}
    trained = vigie(env, "train", SERVICE)
    assert trained.returncode == 0, trained.stderr
    card = json.loads(vigie(env, "models", "show", SERVICE).stdout)
    for key in CLASS_KEYS:
        m = card["metrics"][key]
        for name in ("tss", "hss", "roc_auc", "brier_skill_score"):
            assert isinstance(m[name], float), (key, name)
            assert isinstance(m["persistence"][name], float), (key, name)
            assert isinstance(m["climatology"][name], float), (key, name)
    m = card["metrics"]["m"]
    assert m["tss"] > m["persistence"]["tss"], m
    assert card["metrics"]["c"]["brier_skill_score"] > 0
    assert m["brier_skill_score"] > 0
    assert card["training_data"][0]["rows"] == 7650
    done = vigie(env, "evaluate", SERVICE, "--data", str(path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == CLASS_KEYS and all(set(v) == METRIC_KEYS for v in out.values())
