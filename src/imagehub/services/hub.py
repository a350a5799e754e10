"""The hub: builds every part from the settings once, starts and stops the workers."""

from __future__ import annotations

import logging

from imagehub.catalog.catalog import Catalog
from imagehub.config import Settings
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.events.bus import InProcessBus
from imagehub.jobs.batching import Batcher, BatchPolicy
from imagehub.jobs.queue import SqlQueue
from imagehub.jobs.worker import WorkerPool
from imagehub.services import fetch
from imagehub.services.generation import GenerationService, Services
from imagehub.services.keys import KeyService
from imagehub.storage.local import LocalStorage
from imagehub.storage.signing import UrlSigner

log = logging.getLogger(__name__)


class Hub:
    """One imagehub: store, queue, bus, storage, catalog, workers and the services over them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fetch.configure(settings)  # input-image fetching follows these settings, not the env's
        self.db = make_engine(settings.resolved_database_url)
        migrate(self.db)
        sessions = make_sessionmaker(self.db)
        self.keys = KeyService(sessions)
        self.queue = SqlQueue(sessions)
        self.deps = Services(
            catalog=Catalog.load(settings),
            queue=self.queue,
            bus=InProcessBus(settings.event_buffer_size),
            storage=LocalStorage(settings.data_dir / "files"),
            signer=UrlSigner(settings.secret(), settings.base_url, settings.url_ttl_seconds),
        )
        self.deps.batch_policy = BatchPolicy(settings.max_batch_size, settings.batch_wait_ms)
        self.deps.encode_workers = settings.encode_workers
        self.generations = GenerationService(self.deps)
        batcher = Batcher(self.queue, self.deps.batch_policy, self.generations.batch_capacity)
        self.deps.batcher = batcher
        self.workers = WorkerPool(self.queue, self.generations.run_job,
                                  settings.worker_concurrency, settings.worker_poll_seconds,
                                  batcher=batcher, batch_handler=self.generations.run_batch)
        self.deps.workers = self.workers

    def start(self, run_workers: bool = True) -> None:
        """Recover what a crash left behind, then start the workers."""
        recovery = self.queue.recover(self.settings.max_attempts)
        if recovery.requeued or recovery.failed:
            log.warning("recovered after a stop: %d re-queued, %d failed",
                        len(recovery.requeued), len(recovery.failed))
        self.generations.publish_recovered_failures(recovery.failed)
        self._load_models()
        if run_workers:
            self.workers.start()

    def _load_models(self) -> None:
        """Set the model memory budget; load and pin the preloaded models."""
        if self.settings.model_memory_budget_gb:
            from imagehub.engines.diffusers.residency import RESIDENCY

            RESIDENCY.configure(self.settings.model_memory_budget_gb)
        for model_id in filter(None, (m.strip() for m in self.settings.preload_models.split(","))):
            entry = self.deps.catalog.get(model_id)
            if entry.engine is not None and hasattr(entry.engine, "pinned"):
                entry.engine.pinned = True
            entry.ready_engine()
            log.info("preloaded %s", model_id)

    def stop(self) -> None:
        self.workers.stop()
        self.db.dispose()
