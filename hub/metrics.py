"""Prometheus metrics, held in a registry owned by the app (no module-level collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tradehub_http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tradehub_http_request_duration_seconds",
            "Time from request start to the end of the response",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.websockets = Gauge(
            "tradehub_websockets_open",
            "Open WebSocket connections",
            ["route"],
            registry=self.registry,
        )
        self.ws_frames = Counter(
            "tradehub_ws_frames_sent_total",
            "WebSocket frames sent",
            ["route"],
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "tradehub_slow_consumers_total",
            "Subscribers cut off because they fell behind",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
