"""Alerting's own Prometheus metrics, registered next to the HTTP ones of the runtime."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events = Counter(
            "vigie_alerting_level_events_total",
            "Level events read from the stream, by outcome (applied, duplicate, stale, invalid)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.opened = Counter(
            "vigie_alerts_opened_total", "Alerts opened", ["service", "level"], registry=r
        )
        self.resolved = Counter(
            "vigie_alerts_resolved_total", "Alerts resolved, by peak level", ["service", "level"],
            registry=r,
        )  # fmt: skip
        self.transitions = Counter(
            "vigie_alert_transitions_total", "Alert transitions", ["service", "kind", "level"],
            registry=r,
        )  # fmt: skip
        self.notifications = Counter(
            "vigie_notifications_total",
            "Notification attempts by channel and outcome (sent, retrying, dead, suppressed)",
            ["channel", "outcome"], registry=r,
        )  # fmt: skip
        self.delivery_latency = Histogram(
            "vigie_notification_delivery_seconds",
            "From the transition to the notification accepted by its channel",
            ["channel"], buckets=DELIVERY_BUCKETS, registry=r,
        )  # fmt: skip
        self.stream_lag = Gauge(
            "vigie_levels_stream_lag",
            "Entries of vigie:levels not yet read by the alerting group",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.stream_pending = Gauge(
            "vigie_levels_stream_pending",
            "Entries read by the alerting group but not yet acknowledged",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.open_alerts = Gauge(
            "vigie_open_alerts", "Open alerts by service and level", ["service", "level"],
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.dead_letters = Gauge(
            "vigie_notifications_dead", "Deliveries given up (the dead-letter view)",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
