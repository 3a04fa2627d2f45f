"""The services the contract suite runs against: every prediction service of the registry, and
the toy sixth service (:mod:`tests.support.toy_service`), which only declares itself.

A case knows how to make its synthetic training data and which file of it ``vigie replay``
reads, so valid requests come from the service's own :meth:`replay_requests` (the toy, which
does not replay, writes its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

from vigie.contract.service import PredictionService

TOY = "tank-level"


@dataclass(frozen=True)
class Case:
    service: str
    #: "module:function" writing the synthetic training data into a data dir
    writer: str
    #: the file (relative to the data dir) whose rows make valid requests
    replay_file: str
    writer_kwargs: tuple[tuple[str, Any], ...] = ()
    #: gunicorn app spec, for a service the registry does not list (the toy)
    app_spec: str | None = None

    def write_data(self, data_dir: Path) -> object:
        module, _, name = self.writer.partition(":")
        kwargs = dict(self.writer_kwargs)
        if "simulation" in kwargs:  # solar-flare's writer takes a simulation, made here
            simulate = import_module("tests.services.solar_flare.synthetic").simulate
            kwargs["sim"] = simulate(*kwargs.pop("simulation"))
        return getattr(import_module(module), name)(data_dir, **kwargs)

    def service_class(self) -> type[PredictionService[Any, Any]]:
        if self.service == TOY:
            from tests.support.toy_service import TankLevelService

            return TankLevelService
        from vigie_services import load_service

        return load_service(self.service)


CASES: tuple[Case, ...] = (
    Case("solar-flare", "tests.services.solar_flare.synthetic:write_solar_data",
         "solar_flare/daily_train.csv", (("simulation", (700, 3)),)),
    Case("gamma-classifier", "tests.services.gamma_classifier.synthetic:write_gamma_data",
         "gamma/train.csv", (("n", 3000), ("seed", 0))),
    Case("transformer-temperature", "tests.support.synthetic:write_transformer_data",
         "transformer/ETTh1_train.csv", (("hours", 900),)),
    Case("turbine-nox", "tests.services.turbine_nox.synthetic:write_turbine_data",
         "turbine_nox/train.csv", (("rows_per_year", 500),)),
    Case("energy-anomaly", "tests.services.energy_anomaly.synthetic:write_gas_data",
         "energy/gas_regional_daily_train.csv"),
    Case(TOY, "tests.support.toy_service:write_training_data", "tank/train.csv",
         app_spec="tests.support.toy_service:app()"),
)  # fmt: skip


def toy_bodies(count: int, rows: int) -> list[dict[str, Any]]:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    return [
        {
            "asset_id": "TANK-1",
            "measurements": [
                {"timestamp": (t0 + timedelta(hours=k * rows + i)).isoformat(),
                 "level_m": 5.0 + i % 3, "inflow_m3_h": 20.0}
                for i in range(rows)
            ],
        }
        for k in range(count)
    ]  # fmt: skip


def valid_bodies(case: Case, data_dir: Path, count: int, rows: int = 1) -> list[dict[str, Any]]:
    """``count`` distinct valid predict bodies of ``rows`` new rows each."""
    if case.app_spec is not None:
        return toy_bodies(count, rows)
    service = case.service_class()
    from vigie.settings import VigieSettings

    requests = service(VigieSettings()).replay_requests(data_dir / case.replay_file, None, rows)
    out: list[dict[str, Any]] = []
    for request in requests:
        cut = request.first(rows)
        out.append({"asset_id": cut.asset_id, "measurements": cut.measurements})
        if len(out) == count:
            break
    assert len(out) == count, f"{case.service}: only {len(out)} requests in the replay file"
    return out


Writer = Callable[[Path], object]
