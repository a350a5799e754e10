"""What is kept, and for how long: ended generations past ``RETENTION_DAYS`` are deleted, their
rows and their images; stored input images no open generation needs are deleted an hour after
they were last written. One thread sweeps, in the process that runs the workers: at start, then
every hour (sooner for a retention under a day)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from imagehub.jobs.queue import SqlQueue
from imagehub.services import inputs
from imagehub.storage.base import Storage

log = logging.getLogger(__name__)

INPUT_GRACE_SECONDS = 3600.0
"""How long an input image is kept after it was last written, referred to or not: a request
stores it before its rows exist."""
_BATCH = 500
"""Generations deleted per transaction."""


@dataclass
class Swept:
    """What one sweep deleted."""

    generations: int = 0
    input_images: int = 0


class Retention:
    """Sweeps ``storage`` and ``queue``: at ``start``, then every ``interval`` seconds."""

    def __init__(self, queue: SqlQueue, storage: Storage, days: float,
                 on_swept: Callable[[Swept], None] | None = None) -> None:
        self.queue, self.storage = queue, storage
        self.keep_seconds = days * 86400  # 0: ended generations are kept for ever
        self.on_swept = on_swept
        self.interval = min(3600.0, max(1.0, self.keep_seconds / 24)) if days else 3600.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: float | None = None) -> Swept:
        now = time.time() if now is None else now
        swept = Swept()
        if self.keep_seconds:
            swept.generations = self._expire(int(now - self.keep_seconds))
        swept.input_images = inputs.drop_unused(self.storage, self.queue.open_resolved,
                                                now - INPUT_GRACE_SECONDS)
        if swept.generations or swept.input_images:
            log.info("retention: deleted %d ended generation(s) and %d unused input image(s)",
                     swept.generations, swept.input_images)
        if self.on_swept is not None:
            self.on_swept(swept)
        return swept

    def _expire(self, cutoff: int) -> int:
        """Delete the generations that ended before ``cutoff``: images first, so a sweep cut
        short leaves rows to find again, never files no row names."""
        deleted = 0
        while not self._stopping.is_set() and (ids := self.queue.ended_before(cutoff, _BATCH)):
            for generation_id in ids:
                self.storage.delete_prefix(generation_id)
            done = self.queue.delete_ended(ids)
            deleted += done
            if len(ids) < _BATCH or not done:
                break
        return deleted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="imagehub-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sweep()
            except Exception:  # a locked database, a full disk: next time
                log.exception("retention: the sweep failed; it runs again in %.0f s", self.interval)
            self._stopping.wait(self.interval)
