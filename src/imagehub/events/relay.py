"""Events from rows: on a node that runs no workers (``RUN_WORKERS=false``), the queued
generations run in another process, whose events stay in that process's bus. ``RowRelay`` reads
the queue's rows every poll interval and publishes what changed on this node's bus: a
generation started, and how it ended (completed, failed or cancelled, with its image URL).
Progress steps are not in the rows, so this node's streams carry no progress events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from imagehub.db.records import GenerationRecord
from imagehub.jobs.queue import SqlQueue
from imagehub.protocol import GenerationStatus as S

log = logging.getLogger(__name__)

WINDOW_SECONDS = 5
"""Ended rows are read back this far (``completed_at`` is in whole seconds, and a poll may be
late); the ids already published stay remembered that long."""


class RowRelay:
    """A thread publishing the queue's row changes through ``started`` and ``ended``."""

    def __init__(self, queue: SqlQueue, started: Callable[[GenerationRecord], None],
                 ended: Callable[[GenerationRecord], None], poll_seconds: float) -> None:
        self._queue, self._started, self._ended = queue, started, ended
        self._poll = poll_seconds
        self._seen_started: set[str] = set()
        self._seen_ended: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="imagehub-row-relay", daemon=True)

    def start(self) -> None:
        """What has happened before now is not news: only later changes are published."""
        processing, ended = self._queue.changed_rows(int(time.time()) - WINDOW_SECONDS)
        self._seen_started = {row.id for row in processing + ended}
        self._seen_ended = {row.id: row.completed_at or 0 for row in ended}
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a bad poll must not end the relay
                log.exception("reading the queue's changes failed; trying again")

    def poll(self) -> None:
        since = int(time.time()) - WINDOW_SECONDS
        processing, ended = self._queue.changed_rows(since)
        for row in processing:
            self._start(row)
        for row in ended:
            if row.id in self._seen_ended:
                continue
            if row.status != S.CANCELLED.value and row.started_at is not None:
                self._start(row)  # it started and ended between two polls
            self._seen_ended[row.id] = row.completed_at or 0
            self._ended(row)
        # a row no longer processing either ended or went back to the queue (a worker's graceful
        # stop): when it starts again, that is news again
        self._seen_started &= {row.id for row in processing}
        self._seen_ended = {i: t for i, t in self._seen_ended.items() if t >= since}

    def _start(self, row: GenerationRecord) -> None:
        if row.id not in self._seen_started:
            self._seen_started.add(row.id)
            self._started(row)
