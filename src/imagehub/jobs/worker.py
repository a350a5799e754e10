"""The worker loop: in-process threads that take queued jobs and hand each to a handler.

Engines are blocking (torch, or a provider's long poll), so workers are threads. A semaphore of
``concurrency`` slots is shared with the sync path (``slot()``), so sync calls and queued jobs
never run more engines at once than configured.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from imagehub.db.records import GenerationRecord
from imagehub.jobs.queue import JobQueue

log = logging.getLogger(__name__)

JobHandler = Callable[[GenerationRecord], None]


class WorkerPool:
    """``concurrency`` threads, woken at once by ``wake()`` and polling as a fallback."""

    def __init__(self, queue: JobQueue, handler: JobHandler, concurrency: int = 1,
                 poll_seconds: float = 0.5) -> None:
        self._queue, self._handler = queue, handler
        self._concurrency, self._poll = concurrency, poll_seconds
        self._slots = threading.BoundedSemaphore(concurrency)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._concurrency):
            thread = threading.Thread(target=self._loop, name=f"imagehub-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wake(self) -> None:
        """A job was enqueued: stop waiting."""
        self._wake.set()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one engine slot (the sync path uses this)."""
        with self._slots:
            yield

    def drain(self) -> int:
        """Run jobs on the calling thread until the queue is empty (tests, burst mode)."""
        done = 0
        while self._run_one():
            done += 1
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._run_one():
                self._wake.wait(self._poll)
                self._wake.clear()

    def _run_one(self) -> bool:
        with self._slots:
            record = self._queue.claim()
            if record is None:
                return False
            try:
                self._handler(record)
            except Exception:  # the handler records failures; this is a last guard
                log.exception("worker handler crashed on %s", record.id)
        return True
