"""What ``vigie serve`` prepares for a prediction service before gunicorn forks its workers.

The ``prepare`` of every piece declared with :func:`vigie.ops.registry.prediction_service`. Bad
settings (asset configuration, keys, model directory) fail here with the reason, once, instead
of in every worker; the prediction tables and the workers' shared outbox are created here so
that workers never race to create them.
"""

from __future__ import annotations

from vigie.ops.registry import Piece
from vigie.settings import VigieSettings


def prediction_service(piece: Piece, settings: VigieSettings) -> None:
    """Build the app once (``ConfigError`` with the reason on bad configuration), create the
    prediction log's tables and the outbox of level events."""
    # Imported here: the platform pieces' images (auth, alerting) do not hold the model libraries
    # the serving runtime imports.
    from vigie.io.outbox import Spool, spool_path
    from vigie.io.prediction_log import ensure_schema, make_engine
    from vigie.serve.app import create_app

    create_app(piece.load_service_class()(settings), settings)
    engine = make_engine(settings.database_url_for(piece.name))
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    # The workers' shared outbox, made (and switched to WAL) once before they fork.
    Spool(spool_path(settings, piece.name))
