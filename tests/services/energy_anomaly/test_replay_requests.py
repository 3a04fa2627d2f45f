"""energy-anomaly replay: windows of consecutive days from a synthetic gas CSV."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.services.energy_anomaly.synthetic import gas_frame
from tests.support.replay import parsed, real_requests, unbound, unbound_fixture
from vigie.contract.replay import ReplayRequest
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly.service import DayMeasurement, EnergyAnomalyService

HISTORY = md.HISTORY_DAYS
PLAIN, GAPPED, EMPTY_DAY = "grtgaz.auvergne-rhone-alpes", "grtgaz.ile-de-france", "terega.occitanie"


service = unbound_fixture(EnergyAnomalyService)


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    """40 days of 3 series: one whole, one missing days 15-16, one with day 20 all empty."""
    frame = gas_frame(days=40, seed=1)
    day = frame.groupby("series").cumcount()
    frame = frame[~((frame["series"] == GAPPED) & day.isin([15, 16]))].copy()
    empty = (frame["series"] == EMPTY_DAY) & (day == 20)
    frame.loc[empty, [*dt.HOURS, "daily"]] = np.nan
    frame.loc[(frame["series"] == PLAIN) & (day == 30), "daily"] = np.nan  # total rebuilt
    path = tmp_path / "gas.csv"
    dt.to_training_csv(frame, path)
    return path


def days_of(request: ReplayRequest) -> list[DayMeasurement]:
    """The request's days as the service's schema reads them; consecutive, history + rows."""
    days: list[DayMeasurement] = parsed(unbound(EnergyAnomalyService), request, HISTORY)
    assert {b.timestamp - a.timestamp for a, b in pairwise(days)} == {timedelta(days=1)}
    return days


def test_windows_per_series_split_at_days_without_data(
    csv: Path, service: EnergyAnomalyService
) -> None:
    requests = list(service.replay_requests(csv, None, 7))
    rows: dict[str, list[int]] = {}
    for r in requests:
        rows.setdefault(r.asset_id, []).append(r.rows)
        days_of(r)
    assert rows == {
        PLAIN: [7, 7, 7, 7, 5],  # 40 days, the first 7 history only
        GAPPED: [7, 1, 7, 7, 2],  # days 0-14 (8 new), then 17-39 (16 new)
        EMPTY_DAY: [7, 6, 7, 5],  # days 0-19 (13 new), then 21-39 (12 new)
    }
    assert [r.asset_id for r in requests] == sorted(r.asset_id for r in requests)  # in turn
    plain = [m for r in requests if r.asset_id == PLAIN for m in r.measurements]
    assert plain[0]["timestamp"] == "2021-01-01T00:00:00Z"
    assert any(m["daily_mwh"] is None for m in plain)  # a missing total is sent as null
    assert all(len(m["hourly_mwh"]) == 24 for m in plain)


def test_one_series_chosen_or_refused(csv: Path, service: EnergyAnomalyService) -> None:
    requests = list(service.replay_requests(csv, GAPPED, 30))
    assert [(r.asset_id, r.rows) for r in requests] == [(GAPPED, 8), (GAPPED, 16)]
    with pytest.raises(ValueError, match="no row of series"):
        service.replay_requests(csv, "grtgaz.atlantis", 7)


@pytest.mark.realdata
def test_real_days_are_accepted(service: EnergyAnomalyService) -> None:
    requests = real_requests(service, dt.TRAIN_FILE)
    assert len({r.asset_id for r in requests}) == 15
    refused = []
    for r in requests:
        try:
            days_of(r)
        except ValidationError as exc:
            refused += [(e["loc"], e["type"]) for e in exc.errors()]
    # The one refusal the file holds: a few hourly values above the schema's bound of
    # MAX_HOURLY_MWH (1e6 MWh in an hour), which the service answers with a 422.
    assert all(loc[0] == "hourly_mwh" and kind == "less_than_equal" for loc, kind in refused)
