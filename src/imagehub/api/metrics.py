"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagehub.errors import GenerationCancelled
from imagehub.services.retention import Swept


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("imagehub_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("imagehub_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.queue_depth = Gauge("imagehub_queue_depth", "Generations by active status",
                                 ["status"], registry=self.registry)
        self.engine_seconds = Histogram(
            "imagehub_engine_call_seconds", "Engine calls (one batch each), by model", ["model"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry)
        self.batch_images = Histogram(
            "imagehub_engine_batch_images", "Images per engine call, by model", ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.outcomes = Counter("imagehub_engine_requests_total",
                                "Requests out of engine calls, by model and outcome",
                                ["model", "outcome"], registry=self.registry)
        self.resident_models = Gauge("imagehub_resident_models", "Local models loaded, by device",
                                     ["device"], registry=self.registry)
        self.resident_bytes = Gauge("imagehub_resident_bytes", "Bytes the loaded models take, by device",
                                    ["device"], registry=self.registry)

        self.storage_free = Gauge("imagehub_storage_free_bytes",
                                  "Free bytes where images are stored (/readyz is not ready under "
                                  "64 MiB)", registry=self.registry)
        self.deleted = Counter("imagehub_retention_deleted_total",
                               "What the retention sweeps deleted: ended generations (rows and "
                               "images) and unused input images", ["kind"], registry=self.registry)

    def swept(self, swept: Swept) -> None:
        """One retention sweep (``services.retention.Retention.on_swept``)."""
        self.deleted.labels("generations").inc(swept.generations)
        self.deleted.labels("input_images").inc(swept.input_images)

    def engine_call(self, model: str, images: int, seconds: float, outcomes: list[object]) -> None:
        """One engine call (``services.generation.EngineCallHook``)."""
        self.engine_seconds.labels(model).observe(seconds)
        self.batch_images.labels(model).observe(images)
        for outcome in outcomes:
            if isinstance(outcome, GenerationCancelled):
                kind = "cancelled"
            else:
                kind = "error" if isinstance(outcome, Exception) else "ok"
            self.outcomes.labels(model, kind).inc()

    def refresh(self, hub) -> None:  # type: ignore[no-untyped-def]
        depth = hub.queue.depth()
        for status in ("queued", "processing"):
            self.queue_depth.labels(status).set(depth.get(status, 0))
        free = hub.deps.storage.free_bytes()
        if free is not None:
            self.storage_free.set(free)
        from imagehub.engines.diffusers.residency import RESIDENCY  # no torch: bookkeeping only

        for device, (count, size) in RESIDENCY.devices().items():
            self.resident_models.labels(device).set(count)
            self.resident_bytes.labels(device).set(size)


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
