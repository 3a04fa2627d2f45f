"""solar-flare's scoring in-process: features and consistency rules on one matrix for all days
(no DataFrame), the same numbers, items and 422s as the per-day, pandas path."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.services.solar_flare.conftest import SERVICE, simulation
from vigie.contract.batch import Batch
from vigie.contract.errors import Unprocessable
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services.solar_flare import features as ft
from vigie_services.solar_flare import modeling as md
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.consistency import (
    checked_summaries,
    consistency_errors,
    inconsistent_rows,
)
from vigie_services.solar_flare.service import FlareDay, SolarFlareService


def reference_features(summary_table: pd.DataFrame) -> np.ndarray:
    """summary.features as it was written first (column by column on the DataFrame)."""
    t = summary_table[list(sm.MODEL_INPUTS)].astype(np.float64)
    fluxes = ("max_xray_flux_today", "max_xray_flux_last_3d", "max_xray_flux_last_27d")
    counts = [c for c in sm.MODEL_INPUTS if c.startswith("n_")]
    blocks = [np.log10(np.maximum(t[c].to_numpy(), ft.FLUX_FLOOR_W_M2)) for c in fluxes]
    blocks += [np.log1p(np.maximum(t[c].to_numpy(), 0.0)) for c in counts]
    blocks += [
        np.sqrt(np.maximum(t["sunspot_number"].to_numpy(), 0.0)),
        np.sqrt(np.maximum(t["sunspot_number_mean_27d"].to_numpy(), 0.0)),
        t["sunspot_number_change_1d"].to_numpy(),
    ]
    blocks += [
        np.log1p(np.clip(t[c].to_numpy(), 0, sm.DAYS_SINCE_CAP))
        for c in ("days_since_last_M_or_X", "days_since_last_X")
    ]
    return np.column_stack(blocks).astype(np.float64)


def perturbed_summaries(n: int, seed: int) -> list[dict[str, Any]]:
    """Summaries of the simulation, some of them broken in each way the rules look at."""
    rng = np.random.default_rng(seed)
    rows = simulation().table[list(sm.SUMMARY_NAMES)].to_dict("records")[:n]
    out = []
    for row in rows:
        s = {c.name: (int(row[c.name]) if c.kind is int else float(row[c.name]))
             for c in sm.SUMMARY_COLUMNS if not pd.isna(row[c.name])}  # fmt: skip
        if rng.random() < 0.4:
            name = rng.choice([c.name for c in sm.SUMMARY_COLUMNS if c.model_input])
            s[name] = type(s[name])(s[name] + rng.choice([-3, -1, 1, 2]) * (1 + abs(s[name])))
            s[name] = max(s[name], 0) if name != "sunspot_number_change_1d" else s[name]
        out.append(s)
    return out


def test_features_of_the_matrix_equal_the_dataframe_features() -> None:
    table = simulation().table
    matrix = table[list(sm.MODEL_INPUTS)].to_numpy(dtype=np.float64)
    expected = reference_features(table)
    assert np.array_equal(ft.features_matrix(matrix), expected)
    assert np.array_equal(ft.features(table), expected)
    assert np.array_equal(ft.features_matrix(matrix[5:6]), expected[5:6])


@pytest.mark.parametrize("seed", [0, 1])
def test_inconsistent_rows_flag_exactly_the_summaries_with_consistency_errors(seed: int) -> None:
    summaries = perturbed_summaries(600, seed)
    matrix = np.array([[s[c] for c in sm.MODEL_INPUTS] for s in summaries], dtype=np.float64)
    flagged = inconsistent_rows(matrix)
    expected = [bool(consistency_errors(s)) for s in summaries]
    assert flagged.tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_a_summary_dict_is_its_model_dump() -> None:
    given = simulation().summary_json(100)
    given.pop("sunspot_number_std", None)
    for extra in ({}, {"sunspot_number_std": 3.5, "sunspot_n_obs": 31}, {"sunspot_n_obs": 2}):
        day = FlareDay.model_validate(
            {"timestamp": simulation().timestamp(100), "summary": {**given, **extra}}
        )
        assert day.summary is not None
        assert day.summary.__dict__ == day.summary.model_dump()
        assert list(day.summary.__dict__) == list(day.summary.model_dump())


@pytest.fixture(scope="module")
def service(trained_models: Path) -> SolarFlareService:
    svc = SolarFlareService(VigieSettings(asset_config=None))
    svc.bind(ModelStore(trained_models).load_current(SERVICE))
    return svc


def days(indices: list[int], raw: frozenset[int] = frozenset()) -> list[FlareDay]:
    """Days of the simulation, sent as ``raw`` for the indices in ``raw``, else as ``summary``."""
    sim = simulation()
    out = []
    for i in indices:
        source = {"raw": sim.raw_json(i)} if i in raw else {"summary": sim.summary_json(i)}
        out.append(FlareDay.model_validate({"timestamp": sim.timestamp(i), **source}))
    return out


def test_items_equal_the_dataframe_path(service: SolarFlareService) -> None:
    indices = list(range(30, 130))
    batch = days(indices, raw=frozenset(indices[::3]))
    logged = [day.model_dump(mode="json", exclude_none=True) for day in batch]
    scores = score_call(service, Batch("SUN", batch))
    summaries = checked_summaries(batch)
    probs = md.predict_table(service.model.model, pd.DataFrame(summaries))
    for i, (item, day) in enumerate(zip(scores.items, batch, strict=True)):
        assert item["probability_m_or_above"] == round(float(probs["m"][i]), 6)
        assert item["probability_x"] == round(float(probs["x"][i]), 6)
        assert item["summary"] == summaries[i]
        assert item["source"] == ("raw" if day.raw is not None else "summary")
        # what the runtime logs of the day: its fields only, not the summary derived from raw
        assert day.model_dump(mode="json", exclude_none=True) == logged[i]
        assert set(logged[i]) == {"timestamp", item["source"]}
    assert list(scores.items[0])[:5] == [
        "day", "forecast_day", "probability_c_or_above", "probability_m_or_above", "probability_x",
    ]  # fmt: skip
    assert scores.times is None and scores.rows is None  # one prediction per day, in order


def test_raw_summaries_are_derived_once_per_day(
    service: SolarFlareService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    summary_from_raw = sm.summary_from_raw

    def counting(*args: Any) -> dict[str, Any]:
        calls.append(args[0])
        return summary_from_raw(*args)

    monkeypatch.setattr(sm, "summary_from_raw", counting)
    batch = days(list(range(40, 50)), raw=frozenset(range(40, 50, 2)))
    score_call(service, Batch("SUN", batch))  # the checks, the model call and the items
    assert len(calls) == 5


def test_bad_days_get_the_422_of_the_per_day_checks(service: SolarFlareService) -> None:
    sim = simulation()
    rows: list[dict[str, Any]] = [
        {"timestamp": sim.timestamp(i), "summary": sim.summary_json(i)} for i in range(40, 46)
    ]
    rows[1]["summary"]["n_M_flares_last_3d"] = rows[1]["summary"]["n_M_flares_today"] - 1 + 10
    rows[1]["summary"]["n_M_flares_last_7d"] = 0
    rows[4]["summary"]["max_xray_flux_last_27d"] = 0.0
    rows[4]["summary"]["max_xray_flux_today"] = 1e-5
    raw = sim.raw_json(50)
    raw["flares"].append({"goes_class": "C1.0", "peak_time": "2001-01-01T00:00:00Z"})
    rows.insert(3, {"timestamp": sim.timestamp(50), "raw": raw})
    batch = [FlareDay.model_validate(r) for r in rows]
    for order in itertools.islice(itertools.permutations(range(len(batch))), 0, 40, 7):
        shuffled = [batch[i] for i in order]
        with pytest.raises(Unprocessable) as fast:
            score_call(service, Batch("SUN", shuffled))
        with pytest.raises(Unprocessable) as per_day:
            checked_summaries(shuffled)
        assert fast.value.details == per_day.value.details
        assert str(fast.value) == str(per_day.value)
