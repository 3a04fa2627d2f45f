"""gunicorn settings for every Vigie service (``vigie serve`` passes them with ``-c``)."""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger

from vigie.obs.logs import logging_config, set_service
from vigie.obs.metrics import mark_process_dead
from vigie.settings import VigieSettings

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("VIGIE_WORKERS", "2"))
timeout = 30
graceful_timeout = 20
keepalive = 75  # longer than the gateway's upstream keep-alive, so nginx closes first
# Every service would share the default ~/.gunicorn/gunicorn.ctl; we manage them by signals.
control_socket_disable = True

# gunicorn's own lines (master and worker lifecycle) in the same JSON as the services'
# (vigie.obs.logs);
# no access log from gunicorn (nor from uvicorn): RequestContext writes one line per request.
logconfig_dict = logging_config(VigieSettings())
accesslog = None


class VigieLogger(Logger):
    """gunicorn's logger, naming the service in every line from the first one on (``vigie serve
    SERVICE`` runs gunicorn with ``--name vigie-SERVICE``)."""

    def setup(self, cfg: Any) -> None:
        set_service(str(cfg.proc_name).removeprefix("vigie-"))
        super().setup(cfg)
        logging.captureWarnings(True)


logger_class = VigieLogger


def child_exit(_server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not linger in the aggregated /metrics.
    mark_process_dead(worker.pid)
