"""What alerting plugs into the runtime (declared in :mod:`vigie_services.pieces`)."""

from __future__ import annotations

from pydantic import ValidationError

from vigie.contract.errors import ConfigError
from vigie.ops.registry import Piece
from vigie.settings import VigieSettings
from vigie_services.alerting.app import create_app
from vigie_services.alerting.db import migrate
from vigie_services.alerting.settings import AlertingSettings


def prepare(piece: Piece, settings: VigieSettings) -> None:
    """Before gunicorn forks: alerting's own settings (``VIGIE_*`` of AlertingSettings, read
    from the environment like ``settings``) are checked by building the app once, and the
    database is migrated to the latest revision, so the single worker starts on a ready schema."""
    del settings  # alerting reads its wider AlertingSettings from the same environment
    try:
        alerting = AlertingSettings()
    except ValidationError as exc:
        raise ConfigError(f"bad alerting settings: {exc}") from None
    create_app(alerting)
    migrate(alerting.database_url_for(piece.name))
