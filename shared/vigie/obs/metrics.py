"""Prometheus metrics of a Vigie process, correct under gunicorn with several workers.

Under gunicorn, ``vigie serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start:
prometheus-client then keeps every value in per-process files there and ``/metrics`` aggregates
them, so whichever worker answers the scrape reports the whole service. Without it (tests, a
single uvicorn), values live in memory. Each app gets its own registry, so several apps can live in
one process (tests) without name clashes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServiceMetrics:
    """Every metric a Vigie service exports; names are the contract with dashboards and rules."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "vigie_http_requests_total", "HTTP requests by route and status",
            ["service", "method", "route", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "vigie_http_request_duration_seconds", "HTTP request latency",
            ["service", "method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.micro_batch_calls = Histogram(
            "vigie_micro_batch_calls", "predict calls scored together by micro-batching",
            ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "vigie_predictions_total", "Predictions served, by level", ["service", "level"],
            registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "vigie_model_info", "Model in service (value 1): version and artifact sha256",
            ["service", "version", "sha256"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.model_ready = Gauge(
            "vigie_model_ready", "1 when the model is loaded and its sha256 verified",
            ["service"], registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.level_events = Counter(
            "vigie_level_events_total",
            "Level events by outcome: published (to Redis at once), queued (to the local outbox), "
            "flushed (from the outbox to Redis)",
            ["service", "outcome"], registry=r,
        )  # fmt: skip
        self.publish_failures = Counter(
            "vigie_level_event_publish_failures_total",
            "Failed attempts to publish level events to Redis", ["service"], registry=r,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "vigie_level_outbox_depth", "Level events waiting in the local outbox",
            ["service"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.idempotent_replays = Counter(
            "vigie_idempotent_replays_total",
            "Requests answered from the idempotency store (a retry)", ["service"], registry=r,
        )  # fmt: skip
        self.prediction_log_rows = Counter(
            "vigie_prediction_log_rows_total", "Predictions written to the prediction log",
            ["service"], registry=r,
        )  # fmt: skip
        self.prediction_log_errors = Counter(
            "vigie_prediction_log_errors_total", "Failed prediction-log batch writes",
            ["service"], registry=r,
        )  # fmt: skip
        # Live skill, per target and horizon only: an asset id is client input, unbounded as a
        # label (every new asset a new series). Per asset, POST /v1/feedback answers live_mae.
        self.feedback_observations = Counter(
            "vigie_feedback_observations_total", "Observed values matched to a forecast",
            ["service", "target", "horizon"], registry=r,
        )  # fmt: skip
        self.feedback_abs_error = Counter(
            "vigie_feedback_abs_error",
            "Sum of |observed - predicted|; MAE = this / vigie_feedback_observations_total",
            ["service", "target", "horizon"], registry=r,
        )  # fmt: skip
        self.live_mae = Gauge(
            "vigie_live_mae",
            "MAE of the most recent observed forecasts (every asset's; window of 1000)",
            ["service", "target", "horizon"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip

    def exposition(self) -> bytes:
        mp_dir = multiprocess_dir()
        if mp_dir is None:
            return generate_latest(self.registry)
        # Aggregate the files of every worker; the collector reads names from the files.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=mp_dir)
        return generate_latest(registry)


class _HTTPMetricsMiddleware:
    """Pure ASGI middleware: counts and times every request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            # The template, not the raw path: bounded label cardinality.
            path = getattr(route, "path", "<unmatched>")
            method = scope["method"]
            m = self.metrics
            m.requests.labels(m.service, method, path, str(status)).inc()
            m.latency.labels(m.service, method, path).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI, service: str) -> ServiceMetrics:
    """Add request metrics and ``GET /metrics`` to ``app``; returns the metrics object."""
    metrics = ServiceMetrics(service)
    app.state.metrics = metrics
    app.add_middleware(_HTTPMetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def mark_process_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)
