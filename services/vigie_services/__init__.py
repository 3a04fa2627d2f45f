"""The Vigie services: each a thin declaration on top of the :mod:`vigie` runtime."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigie.contract.service import PredictionService

# name (design.md section 1) -> "module:class"; imported lazily so the CLI starts fast.
PREDICTION_SERVICES: dict[str, str] = {
    "solar-flare": "vigie_services.solar_flare.service:SolarFlareService",
    "gamma-classifier": "vigie_services.gamma_classifier.service:GammaClassifierService",
    "turbine-nox": "vigie_services.turbine_nox.service:TurbineNoxService",
    "energy-anomaly": "vigie_services.energy_anomaly.service:EnergyAnomalyService",
    "transformer-temperature": (
        "vigie_services.transformer_temperature.service:TransformerTemperatureService"
    ),
}


def load_service(name: str) -> type[PredictionService[Any]]:
    try:
        target = PREDICTION_SERVICES[name]
    except KeyError:
        known = ", ".join(sorted(PREDICTION_SERVICES))
        raise KeyError(f"unknown service {name!r}; known: {known}") from None
    module, _, cls = target.partition(":")
    service: type[PredictionService[Any]] = getattr(import_module(module), cls)
    return service
