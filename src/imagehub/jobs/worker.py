"""The worker loop: in-process threads that take queued jobs and hand each to a handler.

Engines are blocking (torch, or a provider's long poll), so workers are threads. A semaphore of
``concurrency`` slots is shared with the sync path (``slot()``), so sync calls and queued jobs
never run more engines at once than configured.

With a :class:`~imagehub.jobs.batching.Batcher`, a worker takes a batch of compatible jobs instead
of one, and sync calls join batches too (``run_sync``): the batch handler gets the batch and
``slot``, and holds the slot only around the engine call, so loading a model, decoding inputs and
encoding images never keep the accelerator waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from imagehub.db.records import GenerationRecord
from imagehub.errors import GenerationCancelled
from imagehub.jobs.batching import Batch, Batcher, SyncCall
from imagehub.jobs.queue import JobQueue

log = logging.getLogger(__name__)

JobHandler = Callable[[GenerationRecord], None]
BatchHandler = Callable[[Batch, Callable[[], AbstractContextManager[None]]], None]
"""``handler(batch, slot)``: runs the batch to its end, ``with slot():`` around the engine call;
every sync call in it gets a result or an exception on its future."""
CrashHandler = Callable[[list[GenerationRecord], Exception], None]
"""``on_crash(rows, exc)``: a handler raised ``exc``; the rows it had claimed must not stay
``processing`` (they would wait for a restart)."""


class WorkerPool:
    """``concurrency`` threads, woken at once by ``wake()`` and polling as a fallback."""

    def __init__(self, queue: JobQueue, handler: JobHandler, concurrency: int = 1,
                 poll_seconds: float = 0.5, *, batcher: Batcher | None = None,
                 batch_handler: BatchHandler | None = None,
                 on_crash: CrashHandler | None = None) -> None:
        self._queue, self._handler = queue, handler
        self._on_crash = on_crash
        self._batcher, self._batch_handler = batcher, batch_handler
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
        """Take no more work, and wait up to ``timeout`` seconds in all for the workers to end."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def batching(self) -> bool:
        """Whether jobs and sync calls run in batches (a batcher and its handler are set)."""
        return self._batcher is not None and self._batch_handler is not None

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
            try:
                ran = self._run_one()
            except Exception:  # taking work failed (the database): the worker lives, tries again
                log.exception("a worker could not take work; it tries again in %.1f s", self._poll)
                ran = False
            if not ran:
                self._wake.wait(self._poll)
                self._wake.clear()

    def run_sync(self, call: SyncCall) -> Any:
        """Run a sync call in a batch and return its result (raise its exception).

        While the workers run, they take the call into a batch and the calling thread waits for
        its answer. Where none runs (an API-only node, the CLI), the calling thread leads a batch
        with its call, unless another caller's batch took it first.

        Why not always lead: a caller that waits for an engine slot to lead cannot see, meanwhile,
        that another batch took its call and answered it. Under 64 clients such answered callers
        queued for slots one by one behind new batches (each holding a slot through its
        ``wait_ms``), which stretched the sync tail.
        """
        assert self._batcher is not None and self._batch_handler is not None
        self._batcher.offer(call)
        self.wake()
        while not call.future.done():
            self._withdraw_if_gone(call)
            if self._running():
                wait([call.future], timeout=self._poll)  # re-checked: the workers may stop
                continue
            with self._slots:
                self._withdraw_if_gone(call)  # its client may have gone while it waited for a slot
                batch = self._batcher.collect(call)
            if batch is None:  # another caller's batch took it
                break
            self._handle(batch)
        return call.future.result()

    def _withdraw_if_gone(self, call: SyncCall) -> None:
        """A call whose client has gone, and that no batch has taken yet, is not run."""
        assert self._batcher is not None
        if call.gone.is_set() and self._batcher.withdraw(call):
            raise GenerationCancelled("the client closed the connection before the call ran")

    def _running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def _run_one(self) -> bool:
        if self.batching:
            return self._run_batch()
        with self._slots:
            record = self._queue.claim()
            if record is None:
                return False
            try:
                self._handler(record)
            except Exception as exc:  # the handler records failures; this is a last guard
                log.exception("worker handler crashed on %s", record.id)
                self._crashed([record], exc)
        return True

    def _crashed(self, rows: list[GenerationRecord], exc: Exception) -> None:
        if self._on_crash is not None and rows:
            try:
                self._on_crash(rows, exc)
            except Exception:  # a database that cannot be written: the next start recovers them
                log.exception("could not fail %s after the crash", [r.id for r in rows])

    def _run_batch(self) -> bool:
        with self._slots:
            batch = self._batcher.collect() if self._batcher else None
        if batch is None:
            return False
        self._handle(batch)
        return True

    def _handle(self, batch: Batch) -> None:
        assert self._batch_handler is not None
        try:
            self._batch_handler(batch, self.slot)
        except Exception as exc:  # the handler records failures; this is a last guard
            log.exception("batch handler crashed on %s", [r.id for r in batch.rows])
            self._crashed(batch.rows, exc)
            for call in batch.calls:
                if not call.future.done():
                    call.future.set_exception(exc)
