"""Batch claims on real SQLite, the Batcher's grouping and the WorkerPool's batch mode. Workers
drain, never sleep."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from imagehub.db.records import GenerationRecord
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.jobs.batching import Batch, Batcher, BatchPolicy, SyncCall, batch_key
from imagehub.jobs.queue import SqlQueue
from imagehub.jobs.worker import WorkerPool


@pytest.fixture
def queue(tmp_path: Path) -> SqlQueue:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    return SqlQueue(make_sessionmaker(engine))


def record(model: str = "m", steps: int = 2, prompt: str = "p") -> GenerationRecord:
    now = time.time_ns()
    resolved = {"prompt": prompt, "resolution": "512", "aspect_ratio": "1:1",
                "num_inference_steps": steps, "seed": 1}
    return GenerationRecord(
        id=str(uuid.uuid4()), namespace="default", key_id=None, model_name=model,
        media_type="image", source="queue", prompt=prompt, params={"prompt": prompt},
        resolved=resolved, provenance={}, status="queued", num_images=1, images=[], attempts=0,
        idempotency_key=None, enqueued_at=now // 10**9, order_key=now,
    )


def key(steps: int = 2) -> Any:
    return batch_key(record(steps=steps).resolved)


def test_batch_key_separates_what_a_pipeline_call_cannot_mix() -> None:
    base = {"prompt": "a", "resolution": "1K", "aspect_ratio": "1:1", "num_inference_steps": 4}
    assert batch_key(base) == batch_key(base | {"prompt": "b", "seed": 9})
    assert batch_key(base) != batch_key(base | {"num_inference_steps": 5})
    assert batch_key(base) != batch_key(base | {"aspect_ratio": "16:9"})
    assert batch_key(base) != batch_key(base | {"negative_prompt": "blurry"})
    assert batch_key(base | {"negative_prompt": "x"}) == batch_key(base | {"negative_prompt": "y"})


def test_claim_batch_takes_compatible_rows_oldest_first_up_to_the_limit(queue: SqlQueue) -> None:
    rows = [record(prompt="0"), record(model="other"), record(steps=9), record(prompt="1"),
            record(prompt="2"), record(prompt="3")]
    queue.add(rows)

    taken = queue.claim_batch("m", key(), 3, batch_key)

    assert [r.prompt for r in taken] == ["0", "1", "2"]
    assert all(r.status == "processing" and r.attempts == 1 for r in taken)
    assert queue.claim_batch("m", key(), 3, batch_key)[0].prompt == "3"
    assert queue.claim_batch("m", key(), 3, batch_key) == []
    assert queue.get(rows[1].id).status == "queued" and queue.get(rows[2].id).status == "queued"


def test_concurrent_batch_claims_never_share_a_job(queue: SqlQueue) -> None:
    queue.add([record(prompt=str(i)) for i in range(60)])
    taken: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while batch := queue.claim_batch("m", key(), 7, batch_key):
            with lock:
                taken.extend(r.id for r in batch)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 60 and len(set(taken)) == 60


def test_a_cancelled_row_is_not_claimed_into_a_batch(queue: SqlQueue) -> None:
    rows = [record(), record()]
    queue.add(rows)
    queue.cancel(rows[0].id)

    assert [r.id for r in queue.claim_batch("m", key(), 5, batch_key)] == [rows[1].id]


def test_collect_starts_with_a_waiting_sync_call_and_adds_compatible_rows(queue: SqlQueue) -> None:
    queue.add([record(), record(steps=9), record()])
    batcher = Batcher(queue, BatchPolicy(max_size=8))
    call = SyncCall("m", key(), request="r")
    batcher.offer(call)

    batch = batcher.collect()

    assert batch is not None and batch.calls == [call] and call.taken
    assert len(batch.rows) == 2 and batch.size == 3
    assert batcher.collect().rows[0].resolved["num_inference_steps"] == 9  # type: ignore[union-attr]
    assert batcher.collect() is None


def test_collect_respects_the_capacity_of_the_model(queue: SqlQueue) -> None:
    queue.add([record() for _ in range(5)] + [record(model="solo") for _ in range(2)])
    batcher = Batcher(queue, BatchPolicy(max_size=4), capacity=lambda m: 1 if m == "solo" else 4)

    sizes = []
    while (batch := batcher.collect()) is not None:
        sizes.append((batch.model, batch.size))

    assert sizes == [("m", 4), ("m", 1), ("solo", 1), ("solo", 1)]


def test_a_batch_that_is_not_full_waits_a_bounded_time_for_company(queue: SqlQueue) -> None:
    batcher = Batcher(queue, BatchPolicy(max_size=4, wait_ms=2000))
    queue.add([record()])
    late = SyncCall("m", key(), request="late")
    timer = threading.Timer(0.05, batcher.offer, args=(late,))
    timer.start()

    batch = batcher.collect()

    assert batch is not None and batch.calls == [late] and batch.size == 2
    quick = Batcher(queue, BatchPolicy(max_size=4, wait_ms=20))
    queue.add([record()])
    started = time.monotonic()
    assert quick.collect().size == 1  # type: ignore[union-attr]
    assert time.monotonic() - started < 1.0


Handled = list[tuple[list[str], list[Any]]]


def recording_handler(handled: Handled) -> Callable[[Batch, Callable[[], AbstractContextManager[None]]], None]:
    def handle(batch: Batch, slot: Callable[[], AbstractContextManager[None]]) -> None:
        with slot():
            handled.append(([r.prompt or "" for r in batch.rows], [c.request for c in batch.calls]))
        for call in batch.calls:
            call.future.set_result(f"done {call.request}")

    return handle


def test_drain_runs_compatible_jobs_as_batches(queue: SqlQueue) -> None:
    queue.add([record(prompt=str(i)) for i in range(5)] + [record(steps=9, prompt="x")])
    handled: Handled = []
    pool = WorkerPool(queue, lambda r: None, batcher=Batcher(queue, BatchPolicy(max_size=3)),
                      batch_handler=recording_handler(handled))

    assert pool.drain() == 3
    assert [rows for rows, _ in handled] == [["0", "1", "2"], ["3", "4"], ["x"]]


def test_a_sync_call_leads_a_batch_with_the_queued_jobs_when_no_worker_runs(queue: SqlQueue) -> None:
    queue.add([record(prompt="q")])
    handled: Handled = []
    pool = WorkerPool(queue, lambda r: None, batcher=Batcher(queue, BatchPolicy(max_size=4)),
                      batch_handler=recording_handler(handled))

    assert pool.run_sync(SyncCall("m", key(), request="s")) == "done s"
    assert handled == [(["q"], ["s"])]


def sync_calls_from_threads(pool: WorkerPool, count: int) -> list[str]:
    """``count`` threads each running one sync call (request ``i``) at once; their answers."""
    answers: list[str] = []
    threads = [threading.Thread(target=lambda i=i: answers.append(
        pool.run_sync(SyncCall("m", key(), request=i)))) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_sync_calls_from_many_threads_share_batches(queue: SqlQueue) -> None:
    handled: Handled = []
    pool = WorkerPool(queue, lambda r: None,
                      batcher=Batcher(queue, BatchPolicy(max_size=8, wait_ms=200)),
                      batch_handler=recording_handler(handled))
    answers = sync_calls_from_threads(pool, 8)

    assert sorted(answers) == sorted(f"done {i}" for i in range(8))
    assert sum(len(calls) for _, calls in handled) == 8
    assert len(handled) < 8  # at least two of them ran together


def test_with_workers_running_sync_calls_wait_and_the_workers_run_their_batches(queue: SqlQueue) -> None:
    ran_on: list[str] = []

    def handler(batch: Batch, slot: Callable[[], AbstractContextManager[None]]) -> None:
        with slot():
            ran_on.append(threading.current_thread().name)
        for call in batch.calls:
            call.future.set_result(f"done {call.request}")

    pool = WorkerPool(queue, lambda r: None, concurrency=2, poll_seconds=0.05,
                      batcher=Batcher(queue, BatchPolicy(max_size=4, wait_ms=50)),
                      batch_handler=handler)
    pool.start()
    try:
        answers = sync_calls_from_threads(pool, 8)
    finally:
        pool.stop()

    assert sorted(answers) == sorted(f"done {i}" for i in range(8))
    assert ran_on and all(name.startswith("imagehub-worker-") for name in ran_on)
    assert len(ran_on) < 8  # batched


def test_a_handler_crash_answers_the_waiting_sync_calls(queue: SqlQueue) -> None:
    def crash(batch: Batch, slot: Callable[[], AbstractContextManager[None]]) -> None:
        raise RuntimeError("boom")

    pool = WorkerPool(queue, lambda r: None, batcher=Batcher(queue, BatchPolicy()),
                      batch_handler=crash)

    with pytest.raises(RuntimeError, match="boom"):
        pool.run_sync(SyncCall("m", key(), request="s"))


def test_a_handler_crash_hands_its_claimed_rows_to_on_crash(queue: SqlQueue) -> None:
    """Rows a crashed handler had claimed do not stay processing until a restart."""
    def crash(batch: Batch, slot: Callable[[], AbstractContextManager[None]]) -> None:
        raise RuntimeError("boom")

    crashed: list[tuple[list[str], str]] = []

    def on_crash(rows: list[GenerationRecord], exc: Exception) -> None:
        crashed.append(([r.id for r in rows], str(exc)))
        for row in rows:
            queue.fail(row.id, f"internal error: {exc}")

    rows = [record(), record()]
    queue.add(rows)
    pool = WorkerPool(queue, lambda r: None, batcher=Batcher(queue, BatchPolicy(max_size=2)),
                      batch_handler=crash, on_crash=on_crash)

    assert pool.drain() == 1  # one batch of both rows
    assert crashed == [([r.id for r in rows], "boom")]
    assert {queue.get(r.id).status for r in rows} == {"failed"}


def test_top_up_adds_what_arrived_while_the_batch_waited_up_to_its_capacity(queue: SqlQueue) -> None:
    batcher = Batcher(queue, BatchPolicy(max_size=4))
    queue.add([record(prompt="first")])
    batch = batcher.collect()
    assert batch is not None and batch.size == 1
    queue.add([record(prompt=str(i)) for i in range(4)] + [record(steps=9)])
    call = SyncCall("m", key(), request="s")
    batcher.offer(call)

    added = batcher.top_up(batch)

    assert added.calls == [call] and [r.prompt for r in added.rows] == ["0", "1"]
    assert batch.size == 4 and batch.calls == [call] and len(batch.rows) == 3
    assert batcher.top_up(batch).size == 0  # full


def test_progress_of_many_rows_in_one_statement_names_the_rows_still_running(queue: SqlQueue) -> None:
    rows = [record(), record(), record()]
    queue.add(rows)
    queue.claim_batch("m", key(), 3, batch_key)
    queue.cancel(rows[1].id)

    live = queue.report_progress_many([r.id for r in rows], 0.5)

    assert live == {rows[0].id, rows[2].id}
    assert queue.get(rows[0].id).progress == 0.5 and queue.get(rows[1].id).status == "cancelled"
