"""transformer-temperature replay: the requests made from synthetic ETT CSVs, and a real replay.

The end-to-end test runs the real ``auth`` service and the real prediction service (both
``vigie serve`` under gunicorn) on their own ports. Without the gateway there are no path
prefixes, so the replay is given a route (:data:`vigie.client.replay.Route`) that sends ``auth``
paths
to auth and the service's paths to the service; the gateway paths themselves are covered by
``tests/shared/client/test_replay.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.services.transformer_temperature.conftest import SERVICE
from tests.support.replay import parsed, unbound, unbound_fixture
from tests.support.servers import ServiceProcess, wait_until
from tests.support.serving import serve
from tests.support.synthetic import transformer_frame
from vigie.client import replay as rp
from vigie.contract.batch import Batch
from vigie.contract.replay import ReplayRequest
from vigie.models.store import ModelStore
from vigie.serve.scoring import score_call
from vigie.settings import VigieSettings
from vigie_services.auth.clients import ClientStore
from vigie_services.transformer_temperature import features as ft
from vigie_services.transformer_temperature.service import TransformerTemperatureService

HISTORY = ft.HISTORY_HOURS


def write_csv(path: Path, hours: int, seed: int = 0) -> Path:
    """An ETT-shaped CSV of ``hours`` synthetic hourly rows from 2018-03-01 00:00."""
    frame = transformer_frame(hours, seed=seed, start="2018-03-01")
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(path, index=False)
    return path


def new_rows(request: ReplayRequest) -> list[dict]:
    return request.measurements[len(request.measurements) - request.rows :]


service = unbound_fixture(TransformerTemperatureService)


def test_windows_carry_the_history_and_give_batch_forecasts(
    tmp_path: Path, service: TransformerTemperatureService
) -> None:
    csv = write_csv(tmp_path / "ETTh1_2018.csv", HISTORY + 49)  # 50 forecast origins
    requests = list(service.replay_requests(csv, None, 24))
    assert [r.rows for r in requests] == [24, 24, 2]
    assert [len(r.measurements) for r in requests] == [HISTORY + 23, HISTORY + 23, HISTORY + 1]
    assert {r.asset_id for r in requests} == {"ETTh1"}  # from the file name
    for r in requests:
        hours = parsed(service, r, history=HISTORY - 1)
        assert {b.timestamp - a.timestamp for a, b in pairwise(hours)} == {timedelta(hours=1)}
    origins = [m["timestamp"] for r in requests for m in new_rows(r)]
    assert origins[0] == "2018-03-03T23:00:00Z"  # row HISTORY - 1 = 71: the first full window
    assert len(origins) == len(set(origins)) == 50
    assert requests[1].measurements[0]["timestamp"] == "2018-03-02T00:00:00Z"  # overlapping


def test_requests_are_accepted_by_the_model_in_service(
    tmp_path: Path, trained_models: Path
) -> None:
    svc = unbound(TransformerTemperatureService)
    svc.bind(ModelStore(trained_models).load_current(SERVICE))
    csv = write_csv(tmp_path / "later.csv", HISTORY + 30, seed=3)
    requests = list(svc.replay_requests(csv, "ETTh2", 8))
    assert sum(r.rows for r in requests) == 31 and {r.asset_id for r in requests} == {"ETTh2"}
    for r in requests:
        measurements = [svc.Measurement.model_validate(m) for m in r.measurements]
        scores = score_call(svc, Batch(r.asset_id, measurements))
        # one prediction per new row, about that row
        assert scores.rows is not None and len(scores.items) == r.rows
        assert [measurements[i].timestamp for i in scores.rows] == [
            m.timestamp for m in measurements[-r.rows :]
        ]


def test_short_or_broken_files(tmp_path: Path, service: TransformerTemperatureService) -> None:
    short = write_csv(tmp_path / "ETTh1_short.csv", HISTORY - 1)
    assert list(service.replay_requests(short, None, 24)) == []  # history only
    broken = tmp_path / "broken.csv"
    broken.write_text("date,HUFL\n2018-03-01 00:00:00,1.0\n")
    with pytest.raises(ValueError, match="missing column"):
        service.replay_requests(broken, None, 24)


@pytest.mark.integration
def test_end_to_end_replay_through_the_real_auth_and_service(
    tmp_path_factory: pytest.TempPathFactory, trained_models: Path, tmp_path: Path
) -> None:
    root = tmp_path_factory.mktemp("replay-e2e")
    with serve(SERVICE, root, trained_models, sub="scada") as served:
        # the real auth service, signing with the keys the prediction service trusts
        settings = VigieSettings(
            var_dir=root / "var", keys_dir=root / "keys", database_url=None, asset_config=None
        )
        store = ClientStore.from_settings(settings)
        store.create_schema()
        secret = store.add_client("replay-e2e", rp.scope_for(SERVICE).split())
        store.close()
        env = {**served.env, "VIGIE_DATABASE_URL": settings.database_url_for("auth")}
        auth = ServiceProcess("auth", env, root / "auth.log", workers=1).start()
        assert served.service is not None
        urls = {"auth": auth.url, SERVICE: served.service.url}
        try:
            csv = write_csv(tmp_path / "ETTh1_replay.csv", HISTORY + 99, seed=5)
            requests = list(TransformerTemperatureService(settings).replay_requests(csv, None, 24))
            summary = rp.replay(
                SERVICE, requests, route=lambda piece, path: urls[piece] + path,
                credentials=rp.Credentials("replay-e2e", secret), rate=500.0,
            )  # fmt: skip
        finally:
            auth.stop()
        d = summary.as_dict()
        assert summary.ok, d
        assert (d["rows"], d["predictions"], d["requests"]) == (100, 100, 5)
        assert sum(d["levels"].values()) == 100 and d["token_fetches"] == 1

        def stored() -> list[dict]:
            with served.client() as c:
                page = c.get(
                    "/v1/predictions", params={"asset_id": "ETTh1", "limit": 1000},
                    headers=served.headers(),
                ).json()  # fmt: skip
            items: list[dict] = page["items"]
            return items if len(items) == 100 else []

        items = wait_until(stored, what="100 stored predictions")
        assert {datetime.fromisoformat(i["timestamp"]) for i in items} == {
            datetime.fromisoformat(m["timestamp"]) for r in requests for m in new_rows(r)
        }
