"""gunicorn settings for every Vigie service (``vigie serve`` passes them with ``-c``)."""

from __future__ import annotations

import os
from typing import Any

from vigie.metrics import mark_process_dead

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("VIGIE_WORKERS", "2"))
timeout = 30
graceful_timeout = 20
keepalive = 75  # longer than the gateway's upstream keep-alive, so nginx closes first
# Every service would share the default ~/.gunicorn/gunicorn.ctl; we manage them by signals.
control_socket_disable = True


def child_exit(_server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not linger in the aggregated /metrics.
    mark_process_dead(worker.pid)
