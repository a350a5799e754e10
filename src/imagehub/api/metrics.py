"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("imagehub_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("imagehub_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.queue_depth = Gauge("imagehub_queue_depth", "Generations by active status",
                                 ["status"], registry=self.registry)

    def refresh(self, hub) -> None:  # type: ignore[no-untyped-def]
        depth = hub.queue.depth()
        for status in ("queued", "processing"):
            self.queue_depth.labels(status).set(depth.get(status, 0))


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - start)
