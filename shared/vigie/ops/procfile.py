"""The ``Procfile`` honcho runs for `vigie fleet run`: Redis, every piece of the registry, nginx.

Generated from the registry of pieces::

    .venv/bin/python -m vigie.ops.procfile > Procfile

(:func:`vigie.ops.artifacts.check_procfile` keeps the committed file identical to this output).
Each piece runs ``vigie serve <piece>`` on ``$VIGIE_PORT_<PIECE>`` (:func:`port_variable`), which
the launcher sets from :class:`~vigie.ops.fleet.FleetSettings`.
"""

from __future__ import annotations

import sys

from vigie.ops.registry import Registry, load
from vigie.settings import REPO_ROOT

PROCFILE = REPO_ROOT / "Procfile"
REDIS = (
    'redis-server --bind $VIGIE_FLEET_HOST --port $VIGIE_FLEET_REDIS_PORT --dir "$VIGIE_VAR_DIR/'
    'redis" --appendonly yes --save ""'
)
GATEWAY = 'nginx -p "$VIGIE_NGINX_PREFIX" -c "$VIGIE_NGINX_CONFIG" -e stderr -g "daemon off;"'
HEADER = """\
# The fleet on one machine, for honcho. Start it with `make run` (or `vigie fleet run`), which
# prepares keys, certificate, models and the gateway config, then sets these variables.
# Generated from the registry of pieces: python -m vigie.ops.procfile > Procfile
"""


def port_variable(piece: str) -> str:
    """The environment variable holding ``piece``'s port: ``VIGIE_PORT_TURBINE_NOX``."""
    return "VIGIE_PORT_" + piece.upper().replace("-", "_")


def process_line(piece: str) -> str:
    return f"{piece}: vigie serve {piece} --host $VIGIE_FLEET_HOST --port ${port_variable(piece)}"


def render(registry: Registry | None = None) -> str:
    """The Procfile's text: ``redis``, one process per piece (start order), ``gateway``."""
    pieces = (registry or load()).names
    lines = [f"redis: {REDIS}", *(process_line(p) for p in pieces), f"gateway: {GATEWAY}"]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
