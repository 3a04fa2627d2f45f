"""solar-flare replay: daily summaries from a synthetic ``daily_train.csv``-shaped file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import real_data_dir
from tests.services.solar_flare.synthetic import simulate, to_csv
from vigie.contract.service import ReplayRequest
from vigie.serve.schemas import ASSET_ID_PATTERN
from vigie.settings import VigieSettings
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.consistency import checked_summaries
from vigie_services.solar_flare.service import REPLAY_ASSET, FlareDay, SolarFlareService


@pytest.fixture
def service() -> SolarFlareService:
    return SolarFlareService(VigieSettings(asset_config=None))


def days_of(request: ReplayRequest) -> list[FlareDay]:
    """The request's days as the service reads them: schema, then the summary checks."""
    assert re.fullmatch(ASSET_ID_PATTERN, request.asset_id)
    assert request.rows == len(request.measurements)  # no history: every day is forecast
    days = [
        FlareDay.model_validate_json(json.dumps(m, allow_nan=False)) for m in request.measurements
    ]
    checked_summaries(days)  # raises Unprocessable on an inconsistent summary
    return days


def test_one_summary_day_per_row_in_date_order(tmp_path: Path, service: SolarFlareService) -> None:
    table = simulate(70, seed=1).table
    csv = to_csv(table.sample(frac=1.0, random_state=0), tmp_path / "daily.csv")  # shuffled
    requests = list(service.replay_requests(csv, None, 30))
    assert [r.rows for r in requests] == [30, 30, 10]
    assert {r.asset_id for r in requests} == {REPLAY_ASSET}
    days = [d for r in requests for d in days_of(r)]
    assert [d.timestamp.date() for d in days] == [t.date() for t in table["date"]]
    first = requests[0].measurements[0]
    assert first["timestamp"].endswith("T00:00:00Z")
    assert set(first["summary"]) == set(sm.SUMMARY_NAMES)  # the targets are not sent
    assert isinstance(first["summary"]["n_C_flares_today"], int)
    assert days[0].summary is not None
    assert days[0].summary.sunspot_number == table["sunspot_number"].iloc[0]


def test_optional_columns_may_be_absent(tmp_path: Path, service: SolarFlareService) -> None:
    table = simulate(40, seed=2).table.drop(columns=["sunspot_number_std"])
    table.loc[3, "sunspot_n_obs"] = pd.NA
    csv = to_csv(table, tmp_path / "daily.csv")
    requests = list(service.replay_requests(csv, "SUN-2", 100))
    assert [r.asset_id for r in requests] == ["SUN-2"]
    summaries = [m["summary"] for m in requests[0].measurements]
    assert all("sunspot_number_std" not in s for s in summaries)
    assert "sunspot_n_obs" not in summaries[3] and "sunspot_n_obs" in summaries[4]
    days_of(requests[0])
    with pytest.raises(ValueError, match="missing column"):
        service.replay_requests(to_csv(table.drop(columns=["sunspot_number"]), csv), None, 5)


@pytest.mark.realdata
def test_real_days_are_all_accepted(service: SolarFlareService) -> None:
    path = real_data_dir() / "solar_flare" / "daily_train.csv"
    if not path.is_file():
        pytest.skip(f"real data not found: {path} (set VIGIE_DATA_DIR)")
    requests = list(service.replay_requests(path, None, service.replay_batch))
    assert sum(r.rows for r in requests) == 7650
    for r in requests:
        days_of(r)
