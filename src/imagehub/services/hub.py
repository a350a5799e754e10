"""The hub: builds every part from the settings once, starts and stops the workers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from imagehub.catalog.catalog import Catalog, ModelEntry
from imagehub.config import Settings
from imagehub.db.session import make_engine, make_sessionmaker, migrate, sqlite_file
from imagehub.errors import ConfigError, DataDirBusy, ModelUnavailable, NotFound
from imagehub.events.bus import InProcessBus
from imagehub.events.relay import RowRelay
from imagehub.jobs.batching import Batcher, BatchPolicy
from imagehub.jobs.queue import Lane, SqlQueue
from imagehub.jobs.worker import WorkerPool
from imagehub.services import fetch
from imagehub.services.generation import GenerationService, Services
from imagehub.services.keys import KeyService
from imagehub.services.retention import Retention
from imagehub.storage.local import LocalStorage
from imagehub.storage.signing import UrlSigner

log = logging.getLogger(__name__)

WORKER_LOCK = "workers.lock"


class Hub:
    """One imagehub: store, queue, bus, storage, catalog, workers and the services over them."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        """``catalog``: one already loaded from ``settings`` (``serve`` checks it first)."""
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fetch.configure(settings)  # input-image fetching follows these settings, not the env's
        self.db = make_engine(settings.resolved_database_url, settings.db_busy_timeout_seconds)
        migrate(self.db)
        sessions = make_sessionmaker(self.db)
        self.keys = KeyService(sessions)
        self.queue = SqlQueue(sessions)
        self.deps = Services(
            catalog=catalog or Catalog.load(settings),
            queue=self.queue,
            bus=InProcessBus(settings.event_buffer_size),
            storage=LocalStorage(settings.data_dir / "files"),
            signer=UrlSigner(settings.secret(), settings.base_url, settings.url_ttl_seconds),
        )
        self.deps.batch_policy = BatchPolicy(settings.max_batch_size, settings.batch_wait_ms)
        self.deps.encode_workers = settings.encode_workers
        self.deps.engine_handoff = settings.engine_handoff
        self.deps.max_queued = settings.max_queued_per_namespace
        self.generations = GenerationService(self.deps)
        remote = self.deps.catalog.remote_ids
        self._worker_slots = worker_slots(settings, self.deps.catalog)
        self.workers = self._pool(self._worker_slots, lambda: Lane(remote(), excluded=True))
        self.provider_workers = self._pool(settings.provider_concurrency, lambda: Lane(remote()))
        """Remote models' work, apart: a provider taking its time holds up no local model."""
        self.deps.workers, self.deps.provider_workers = self.workers, self.provider_workers
        self.deps.provider_concurrency = settings.provider_concurrency
        self.retention = Retention(self.queue, self.deps.storage, settings.retention_days)
        """Sweeps where the workers run (``start``); ``on_swept`` is for metrics."""
        self._worker_lock: _WorkerLocks | None = None
        """The worker locks, while this process runs its workers (``start``)."""
        self._relay: RowRelay | None = None

    def _pool(self, workers: int, lane: Callable[[], Lane]) -> WorkerPool:
        """``workers`` threads taking the batches of ``lane``'s rows and sync calls."""
        batcher = Batcher(self.queue, self.deps.batch_policy, self.generations.batch_capacity,
                          lane=lane)
        if self.deps.batcher is None:  # the local models' batcher tops their batches up
            self.deps.batcher = batcher
        return WorkerPool(self.queue, self.generations.run_job, workers,
                          self.settings.worker_poll_seconds, batcher=batcher,
                          batch_handler=self.generations.run_batch,
                          on_crash=self.generations.fail_crashed)

    def start(self, run_workers: bool = True, *, owner: str = "an in-process imagehub command",
              relay_events: bool = False) -> None:
        """With workers: take the data dir's worker lock, recover what a crash left behind, start
        the workers. Without (an API-only node, the CLI's read-only commands): none of that, so a
        running server's jobs are never taken for a crash's leftovers; ``relay_events`` (an
        API-only server) publishes the queue's events from its rows. ``owner`` says who runs the
        workers, to another process refused the data dir."""
        if run_workers:
            self._worker_lock = _take_worker_lock(self.settings, owner)
            self._recover()
        self._load_models()
        if run_workers:
            if self._worker_slots > self.settings.worker_concurrency:
                log.info("%d workers: two per copy of a model with replicas "
                         "(IMAGEHUB_WORKER_CONCURRENCY is %d)", self._worker_slots,
                         self.settings.worker_concurrency)
            self.workers.start()
            self.provider_workers.start()
            self.retention.start()
        elif relay_events:
            self.deps.events_from_rows = True
            self._relay = RowRelay(self.queue, self.generations.publish_row_started,
                                   self.generations.publish_row_ended,
                                   self.settings.worker_poll_seconds)
            self._relay.start()

    def _recover(self) -> None:
        recovery = self.queue.recover(self.settings.max_attempts)
        if recovery.requeued or recovery.failed:
            log.warning("recovered after a stop: %d re-queued, %d failed",
                        len(recovery.requeued), len(recovery.failed))
        self.generations.publish_recovered_failures(recovery.failed)

    def _load_models(self) -> None:
        """Set the model memory budget; load and pin the preloaded models."""
        if self.settings.model_memory_budget_gb:
            from imagehub.engines.diffusers.residency import RESIDENCY

            RESIDENCY.configure(self.settings.model_memory_budget_gb)
        for entry in preloaded(self.settings, self.deps.catalog):
            if entry.engine is not None and hasattr(entry.engine, "pinned"):
                entry.engine.pinned = True
            try:
                entry.ready_engine()
            except ModelUnavailable as exc:
                raise ConfigError(f"IMAGEHUB_PRELOAD_MODELS: {entry.id} could not be loaded "
                                  f"({exc.detail})") from None
            log.info("preloaded %s", entry.id)

    def stop(self) -> None:
        """A graceful stop: the workers take nothing more, and what they run has
        ``STOP_GRACE_SECONDS`` to end; what has not goes back to the queue, not counted as an
        attempt (its engine drops it at its next step). Then the models end and the worker lock
        is released."""
        if self._relay is not None:
            self._relay.stop()
        self.retention.stop()
        self._stop_workers(self.settings.stop_grace_seconds)
        if self._worker_lock is not None:
            back = set(self.queue.requeue_processing())
            self._stop_workers(5.0)  # their engines see it at their next step
            back |= set(self.queue.requeue_processing())  # claimed as the workers stopped
            if back:
                log.warning("stopping: %d generation(s) back in the queue, to run at the next start",
                            len(back))
        for entry in self.deps.catalog.all():  # models in processes of their own end with us
            close = getattr(entry.engine, "close", None)
            if close is not None:
                close()
        self.db.dispose()
        if self._worker_lock is not None:
            self._worker_lock.release()


    def _stop_workers(self, grace: float) -> None:
        """Both pools stop taking work; what they run has ``grace`` seconds (together) to end."""
        pools = (self.workers, self.provider_workers)
        for pool in pools:
            pool.stop(0)  # neither takes more work while the other's runs end
        deadline = time.monotonic() + grace
        for pool in pools:
            pool.stop(max(0.0, deadline - time.monotonic()))


def worker_slots(settings: Settings, catalog: Catalog) -> int:
    """``WORKER_CONCURRENCY``, or two workers per copy of the model with the most ``replicas``
    where that is more: each copy needs a batch at it and the next one being collected, else the
    copies take turns (on an H200, 4 workers served 2 copies). Counted when the server starts:
    a card added later takes the workers there are."""
    copies = max((getattr(entry.engine, "replicas", 1) for entry in catalog.all()), default=1)
    return max(settings.worker_concurrency, 2 * copies if copies > 1 else 1)


def check_config(settings: Settings) -> Catalog:
    """The catalog, or ConfigError if its file or a preloaded model cannot work (``serve`` checks
    first, to exit with one line instead of a failed start-up, then serves this catalog)."""
    catalog = Catalog.load(settings)
    preloaded(settings, catalog)
    return catalog


def preloaded(settings: Settings, catalog: Catalog) -> list[ModelEntry]:
    """The entries ``IMAGEHUB_PRELOAD_MODELS`` names; ConfigError for one that is not in the
    catalog or cannot serve here."""
    entries = []
    for model_id in filter(None, (m.strip() for m in settings.preload_models.split(","))):
        try:
            entry = catalog.get(model_id)
        except NotFound:
            known = ", ".join(e.id for e in catalog.all())
            raise ConfigError(f"IMAGEHUB_PRELOAD_MODELS: {model_id!r} is not in the catalog "
                              f"(models: {known})") from None
        if not entry.available:
            raise ConfigError(f"IMAGEHUB_PRELOAD_MODELS: {model_id} cannot be served: "
                              f"{entry.unavailable_reason}")
        entries.append(entry)
    return entries


def _take_worker_lock(settings: Settings, owner: str) -> _WorkerLocks:
    """The worker locks of the data dir and of its SQLite database
    (released by the OS if the process dies, kill -9 included), or DataDirBusy naming the process
    that holds one: two processes' workers on one database would run the same jobs."""
    from filelock import FileLock, Timeout

    taken = _WorkerLocks()
    for path, what in _worker_lock_files(settings):
        lock = FileLock(path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            taken.release()
            raise DataDirBusy(
                f"{_holder(path)} runs the workers of {what}; wait for it or stop it, or, if it is "
                f"a server, send this to it with IMAGEHUB_URL (or --url)") from None
        _owner_file(path).write_text(f"{owner} (pid {os.getpid()})\n")
        taken.append(lock)
    return taken


class _WorkerLocks(list):  # type: ignore[type-arg]
    def release(self) -> None:
        for lock in reversed(self):
            lock.release()
        self.clear()


def _worker_lock_files(settings: Settings) -> list[tuple[Path, str]]:
    """(lock file, what it guards): the data dir, and a SQLite database's file wherever it lies:
    a server on another data dir may share it through ``DATABASE_URL``, even when it is inside
    this one."""
    files = [(settings.data_dir / WORKER_LOCK, str(settings.data_dir))]
    database = sqlite_file(settings.resolved_database_url)
    if database is not None:
        files.append((database.with_name(f"{database.name}.{WORKER_LOCK}"), f"the database {database}"))
    return files


def _owner_file(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".lock") + ".owner")


def check_workers_free(settings: Settings) -> None:
    """DataDirBusy if another process runs this data dir's workers (``serve`` checks first, to
    exit with one line instead of a failed start-up)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _take_worker_lock(settings, "a check").release()


def _holder(lock: Path) -> str:
    owner = _owner_file(lock)
    return owner.read_text().strip() if owner.is_file() else "another process"