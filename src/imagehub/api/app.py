"""The app factory: ``create_app(settings)`` builds FastAPI around one ``Hub``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI

from imagehub import __version__
from imagehub.api import errors
from imagehub.api.deps import RateLimiter
from imagehub.api.metrics import Metrics, MetricsMiddleware
from imagehub.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from imagehub.api.routes import (
    docs, events, files, health, images, models, openai, queue, workbench,
)
from imagehub.catalog.catalog import Catalog
from imagehub.config import Settings, load_settings
from imagehub.errors import ConfigError
from imagehub.services.hub import Hub

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """A new app; the hub (store, workers...) starts with the app's lifespan, over ``catalog``
    when one is given (loaded from ``settings`` otherwise)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sync routes (a blocking generate) run in AnyIO's thread pool: 40 threads by default,
        # which would cap concurrent sync generations below what a batching GPU can take
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.http_threads
        try:
            hub = Hub(settings, catalog)
        except ConfigError as exc:  # a database newer than this code: `serve` says it in a line
            app.state.startup_error = exc
            raise
        hub.deps.on_engine_call = metrics.engine_call
        hub.retention.on_swept = metrics.swept
        try:
            hub.start(run_workers=settings.run_workers,
                      owner=f"the imagehub server at {settings.base_url}",
                      relay_events=not settings.run_workers)
        except ConfigError as exc:  # a preloaded model that cannot load: `serve` says it in a line
            app.state.startup_error = exc
            hub.stop()
            raise
        app.state.hub = hub
        try:
            yield
        finally:
            hub.stop()

    app = FastAPI(title="imagehub", version=__version__, lifespan=lifespan,
                  description="Image-generation models behind the Oxen.ai inference API.")
    app.state.metrics = metrics = Metrics()
    if settings.rate_limit_per_minute > 0:
        app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    errors.install(app)
    for router in (images.router, queue.router, events.router, models.router, files.router,
                   health.router, docs.router, openai.router, workbench.router):
        app.include_router(router)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # outermost: every response gets an id
    return app
