"""The pieces of the Vigie fleet (design.md section 1), as the runtime's registry reads them.

Registered in ``pyproject.toml`` under the entry point group ``vigie.pieces``; everything that
lists pieces (``vigie serve``, the fleet launcher, the gateway, Prometheus, the deployment files'
checks) reads this tuple through :func:`vigie.ops.registry.load`. Declarations only: nothing here
imports a piece's code, so each container image (which holds one piece's package) reads the whole
fleet. A new piece is one entry here, then the deployment files that ``tests/deploy`` names.
"""

from __future__ import annotations

from vigie.ops.registry import CliSpec, Piece, Workers, prediction_service

PIECES: tuple[Piece, ...] = (
    Piece(
        name="auth",
        port=8090,
        app="vigie_services.auth.app:create_app()",
        prepare="vigie_services.auth.piece:prepare",
        cli=CliSpec("clients", "vigie_services.auth.piece:clients_app"),
        client_store="vigie_services.auth.clients:ClientStore.from_settings",
    ),
    Piece(
        name="alerting",
        port=8100,
        app="vigie_services.alerting.app:create_app()",
        # One consumer of the level stream keeps each asset's events in order.
        workers=Workers.ONE,
        scopes=("alerts:read", "alerts:ack", "subscribers:admin"),
        prepare="vigie_services.alerting.piece:prepare",
    ),
    prediction_service("solar-flare", 8101, "vigie_services.solar_flare.service:SolarFlareService"),
    prediction_service(
        "gamma-classifier", 8102, "vigie_services.gamma_classifier.service:GammaClassifierService"
    ),
    prediction_service(
        "transformer-temperature",
        8103,
        "vigie_services.transformer_temperature.service:TransformerTemperatureService",
    ),
    prediction_service("turbine-nox", 8104, "vigie_services.turbine_nox.service:TurbineNoxService"),
    prediction_service(
        "energy-anomaly", 8105, "vigie_services.energy_anomaly.service:EnergyAnomalyService"
    ),
)
