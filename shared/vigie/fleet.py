"""The pieces of the fleet and their local ports (design.md section 1)."""

from __future__ import annotations

PORTS: dict[str, int] = {
    "auth": 8090,
    "alerting": 8100,
    "solar-flare": 8101,
    "gamma-classifier": 8102,
    "transformer-temperature": 8103,
    "turbine-nox": 8104,
    "energy-anomaly": 8105,
}

# What gunicorn serves for each piece: an app factory call.
APPS: dict[str, str] = {
    "auth": "vigie_services.auth.app:create_app()",
    "alerting": "vigie_services.alerting.app:create_app()",
}

# Pieces that must run as exactly one worker (alerting's consumer keeps each asset in order).
SINGLE_WORKER = frozenset({"alerting"})


def app_spec(name: str) -> str:
    """The gunicorn app spec of ``name``: its own factory, or the prediction runtime's."""
    return APPS.get(name, f'vigie.app:app_for("{name}")')
