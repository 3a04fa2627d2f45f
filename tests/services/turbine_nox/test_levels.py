"""turbine-nox's level rule (per asset limits from VIGIE_ASSET_CONFIG), scalar and on arrays."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from vigie.contract.batch import LevelDetail
from vigie.contract.errors import ConfigError
from vigie.contract.levels import Level
from vigie.settings import VigieSettings
from vigie_services.turbine_nox.service import (
    UNIT,
    AssetLimits,
    TurbineNoxService,
    level_of,
    levels_of,
)

LIMITS = AssetLimits(nox_limit_mg_m3=80.0, co_limit_mg_m3=50.0, alerte_fraction=0.9)
VALUES = [0.0, 30.0, 44.99, 45.0, 59.9, 60.0, 75.0, 89.99, 90.0, 99.99, 100.0, 100.01, 400.0]
GRID_LIMITS = (
    AssetLimits(),
    AssetLimits(nox_limit_mg_m3=50, co_limit_mg_m3=60, alerte_fraction=0.75),
    AssetLimits(nox_limit_mg_m3=100, co_limit_mg_m3=100, alerte_fraction=0.5),
    AssetLimits(
        nox_limit_mg_m3=70, co_limit_mg_m3=3, alerte_fraction=0.7
    ),  # 0.7 x 70 = 49.0000...1
)


@pytest.mark.parametrize(
    ("nox", "co", "level"),
    [
        (71.99, 1.0, Level.NORMAL),  # just below 90 % of 80
        (72.0, 1.0, Level.ALERTE),  # at the margin
        (79.99, 1.0, Level.ALERTE),
        (80.0, 1.0, Level.ALERTE),  # at the limit: not above it
        (80.01, 1.0, Level.CRITIQUE),  # above the limit
        (10.0, 45.0, Level.ALERTE),  # CO counts too
        (10.0, 50.5, Level.CRITIQUE),
        (75.0, 50.5, Level.CRITIQUE),  # the worst of the two
    ],
)
def test_level_boundaries(nox: float, co: float, level: Level) -> None:
    got, detail = level_of(nox, co, LIMITS)
    assert got is level
    assert detail.unit == "mg/m3" and detail.message
    if level is Level.CRITIQUE:
        assert detail.threshold in (80.0, 50.0)


def test_messages_name_the_worst_of_nox_and_co() -> None:
    assert level_of(75.0, 50.5, LIMITS)[1] == LevelDetail(
        50.5, UNIT, 50.0, "CO prediction 50.5 mg/m3 above permit 50.0 (permit 50)"
    )
    assert level_of(73.0, 46.0, LIMITS)[1] == LevelDetail(
        73.0, UNIT, 72.0, "NOx prediction 73.0 mg/m3 near permit, ALERTE from 72.0 (permit 80)"
    )
    assert level_of(20.0, 2.0, LIMITS)[1] == LevelDetail(
        20.0, UNIT, 72.0, "NOx 20.0 mg/m3, CO 2.0 mg/m3 below ALERTE"
    )


def reference_level_of(nox: float, co: float, limits: AssetLimits) -> tuple[Level, LevelDetail]:
    """The level rule as it was written first (a loop over NOx and CO)."""
    worst: tuple[Level, str, float, float] | None = None
    for name, value, limit in (
        ("NOx", nox, limits.nox_limit_mg_m3),
        ("CO", co, limits.co_limit_mg_m3),
    ):
        alerte = limits.alerte_fraction * limit
        level = (
            Level.CRITIQUE if value > limit else Level.ALERTE if value >= alerte else Level.NORMAL
        )
        threshold = limit if level is Level.CRITIQUE else alerte
        if worst is None or level.rank > worst[0].rank:
            worst = (level, name, value, threshold)
    assert worst is not None
    level, name, value, threshold = worst
    if level is Level.NORMAL:
        message = f"NOx {nox:.1f} mg/m3, CO {co:.1f} mg/m3 below ALERTE"
        return level, LevelDetail(
            nox, UNIT, limits.alerte_fraction * limits.nox_limit_mg_m3, message
        )
    word = "above permit" if level is Level.CRITIQUE else "near permit, ALERTE from"
    limit = limits.nox_limit_mg_m3 if name == "NOx" else limits.co_limit_mg_m3
    message = f"{name} prediction {value:.1f} mg/m3 {word} {threshold:.1f} (permit {limit:g})"
    return level, LevelDetail(value, UNIT, threshold, message)


def test_level_of_equals_the_rule_as_first_written() -> None:
    for limits in GRID_LIMITS:
        for nox, co in itertools.product(VALUES, VALUES):
            assert level_of(nox, co, limits) == reference_level_of(nox, co, limits)


def test_levels_of_arrays_equals_level_of_each_row() -> None:
    """The array rule that scores a call gives each row the level that explains it."""
    rng = np.random.default_rng(0)
    for limits in GRID_LIMITS:
        edges = [
            limits.nox_limit_mg_m3, limits.alerte_fraction * limits.nox_limit_mg_m3,
            limits.co_limit_mg_m3, limits.alerte_fraction * limits.co_limit_mg_m3,
        ]  # fmt: skip
        values = np.array([*VALUES, *edges, *np.nextafter(edges, 0), *np.nextafter(edges, 500)])
        pairs = np.array(list(itertools.product(values, values)))
        pairs = np.concatenate([pairs, rng.uniform(0, 120, (500, 2))])
        got = levels_of(pairs[:, 0], pairs[:, 1], limits)
        assert got == [level_of(float(n), float(c), limits)[0] for n, c in pairs]
        assert {Level.NORMAL, Level.ALERTE, Level.CRITIQUE} <= set(got)


def test_defaults_and_per_asset_configuration(tmp_path: Path) -> None:
    assert AssetLimits().model_dump() == {
        "nox_limit_mg_m3": 100.0, "co_limit_mg_m3": 100.0, "alerte_fraction": 0.9,
    }  # fmt: skip
    cfg = tmp_path / "assets.json"
    cfg.write_text(json.dumps({"turbine-nox": {"GT7": {"nox_limit_mg_m3": 70}}}))
    svc = TurbineNoxService(VigieSettings(asset_config=cfg, var_dir=tmp_path))
    assert svc.assets.for_asset("GT7").nox_limit_mg_m3 == 70.0
    assert svc.assets.for_asset("GT7").alerte_fraction == 0.9
    assert svc.assets.for_asset("other") == AssetLimits()
    for bad, field in (({"alerte_fraction": 1.5}, "alerte_fraction"), ({"so2": 1}, "so2")):
        cfg.write_text(json.dumps({"turbine-nox": {"GT7": bad}}))
        with pytest.raises(ConfigError, match=f"turbine-nox.GT7.{field}"):
            TurbineNoxService(VigieSettings(asset_config=cfg, var_dir=tmp_path))
