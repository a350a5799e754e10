"""RowRelay over a real SqlQueue: each start and each end published once, what came before the
relay not at all, and a start after a re-queue again."""

from __future__ import annotations

import time

from jobs.test_queue import queue, record  # noqa: F401 - the fixture and the row maker

from imagehub.events.relay import RowRelay
from imagehub.jobs.queue import SqlQueue


def test_starts_and_ends_are_published_once_and_old_news_not_at_all(
        queue: SqlQueue) -> None:  # noqa: F811
    published: list[tuple[str, str]] = []
    old, first, second, sync = record("old"), record("first"), record("second"), record("sync")
    sync.source, sync.status, sync.completed_at = "sync", "succeeded", int(time.time())
    queue.add([old])
    queue.cancel(old.id)  # ended before the relay: not news
    relay = RowRelay(queue, lambda r: published.append(("started", r.prompt)),
                     lambda r: published.append((r.status, r.prompt)), poll_seconds=60)
    relay.start()
    try:
        queue.add([first, second, sync])  # a sync call's row: it has no events
        claimed = queue.claim()  # first: processing
        relay.poll()
        relay.poll()
        queue.finish(claimed.id, [], {})  # type: ignore[union-attr]
        queue.cancel(second.id)  # never started
        relay.poll()
        relay.poll()
        again = queue.claim()
        assert again is None  # nothing left queued
        queue.add([record("third")])
        third = queue.claim()
        relay.poll()
        queue.requeue_processing()  # a worker's graceful stop
        relay.poll()
        assert queue.claim().id == third.id  # type: ignore[union-attr]
        relay.poll()
    finally:
        relay.stop()

    assert published == [("started", "first"), ("succeeded", "first"), ("cancelled", "second"),
                         ("started", "third"), ("started", "third")]
