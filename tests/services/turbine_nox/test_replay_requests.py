"""turbine-nox replay: hourly rows from a synthetic ``turbine_nox/train.csv``-shaped file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services.turbine_nox.synthetic import INPUTS, turbine_frame
from tests.support.replay import parsed, unbound_fixture
from vigie_services.turbine_nox.data import REPLAY_START_YEAR
from vigie_services.turbine_nox.service import REPLAY_ASSET, TurbineMeasurement, TurbineNoxService

service = unbound_fixture(TurbineNoxService)


def test_hourly_rows_per_year_with_the_analyser_values(
    tmp_path: Path, service: TurbineNoxService
) -> None:
    frame = turbine_frame(rows_per_year=30, years=(2013, 2014))
    csv = tmp_path / "gt.csv"
    frame.to_csv(csv, index=False)
    requests = list(service.replay_requests(csv, None, 24))
    assert [r.rows for r in requests] == [24, 24, 12]
    assert {r.asset_id for r in requests} == {REPLAY_ASSET}
    rows: list[TurbineMeasurement] = [m for r in requests for m in parsed(service, r)]
    hour = timedelta(hours=1)
    expected = [datetime(2013, 1, 1, tzinfo=UTC) + k * hour for k in range(30)]
    expected += [datetime(2014, 1, 1, tzinfo=UTC) + k * hour for k in range(30)]
    assert [m.timestamp for m in rows] == expected
    assert [m.NOX for m in rows] == frame["NOX"].tolist()
    assert [m.CO for m in rows] == frame["CO"].tolist()
    assert [[getattr(m, c) for c in INPUTS] for m in rows] == frame[list(INPUTS)].values.tolist()
    assert "year" not in requests[0].measurements[0]


def test_without_analyser_values_or_year(tmp_path: Path, service: TurbineNoxService) -> None:
    csv = tmp_path / "gt.csv"
    turbine_frame(rows_per_year=10, years=(2014,)).drop(columns=["NOX", "CO", "year"]).to_csv(
        csv, index=False
    )
    (request,) = service.replay_requests(csv, "GT-7", 24)
    assert request.asset_id == "GT-7" and request.rows == 10
    rows: list[TurbineMeasurement] = parsed(service, request)
    assert all(m.NOX is None and m.CO is None for m in rows)
    assert rows[0].timestamp == datetime(REPLAY_START_YEAR, 1, 1, tzinfo=UTC)
    assert rows[-1].timestamp == datetime(REPLAY_START_YEAR, 1, 1, 9, tzinfo=UTC)


def test_a_year_cannot_hold_more_rows_than_hours(
    tmp_path: Path, service: TurbineNoxService
) -> None:
    csv = tmp_path / "gt.csv"
    turbine_frame(rows_per_year=8761, years=(2013,)).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="more rows than hours"):
        service.replay_requests(csv, None, 24)
