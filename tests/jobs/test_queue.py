"""SqlQueue on real SQLite: FIFO claims, conditional transitions, crash recovery. Workers drain,
never sleep."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from imagehub.db.records import GenerationRecord
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.jobs.queue import Lane, RowFilter, SqlQueue
from imagehub.jobs.worker import WorkerPool


@pytest.fixture
def queue(tmp_path: Path) -> SqlQueue:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    return SqlQueue(make_sessionmaker(engine))


def record(prompt: str = "p", namespace: str = "default") -> GenerationRecord:
    now = time.time_ns()
    return GenerationRecord(
        id=str(uuid.uuid4()), namespace=namespace, key_id=None, model_name="m", media_type="image",
        source="queue", prompt=prompt, params={"prompt": prompt}, resolved={"prompt": prompt},
        provenance={}, status="queued", num_images=1, images=[], attempts=0, idempotency_key=None,
        enqueued_at=now // 10**9, order_key=now,
    )


def test_claims_in_fifo_order_and_once(queue: SqlQueue) -> None:
    rows = [record(str(i)) for i in range(5)]
    queue.add(rows)
    claimed = [queue.claim() for _ in range(6)]
    assert [c.prompt for c in claimed[:5]] == ["0", "1", "2", "3", "4"]
    assert claimed[5] is None
    assert all(c.status == "processing" and c.attempts == 1 for c in claimed[:5])


def test_a_claimed_job_is_its_row_as_stored(queue: SqlQueue) -> None:
    row = record("p")
    queue.add([row])

    claimed = queue.claim()

    stored = queue.get(row.id)
    columns = GenerationRecord.__table__.columns.keys()
    assert {c: getattr(claimed, c) for c in columns} == {c: getattr(stored, c) for c in columns}
    assert claimed.started_at is not None and claimed.progress == 0.0
    assert claimed.resolved == {"prompt": "p"}


def test_concurrent_claims_never_share_a_job(queue: SqlQueue) -> None:
    queue.add([record(str(i)) for i in range(40)])
    taken: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (job := queue.claim()) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 40 and len(set(taken)) == 40


def test_concurrent_adds_share_a_transaction_and_each_returns_once_committed(queue: SqlQueue) -> None:
    rows = [record(str(i)) for i in range(8)]
    seen_after_return: list[bool] = []
    calls = [threading.Thread(target=lambda r=r: (queue.add([r]), seen_after_return.append(
        queue.get(r.id) is not None))) for r in rows]
    with queue._writer:  # a write is running: the 8 calls queue up behind it
        for call in calls:
            call.start()
        deadline = time.monotonic() + 10
        while len(queue._adds) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(queue._adds) == 8
    for call in calls:
        call.join()

    assert seen_after_return == [True] * 8
    assert queue._adds == []
    assert {r.prompt for r in queue.list(RowFilter(["default"]))} == {str(i) for i in range(8)}


def test_a_bad_add_in_a_shared_transaction_fails_alone(queue: SqlQueue) -> None:
    first = record("first")
    queue.add([first])
    duplicate = record("dup")
    duplicate.id = first.id  # the primary key is taken
    outcomes: dict[str, BaseException | None] = {}

    def add(name: str, row: GenerationRecord) -> None:
        try:
            queue.add([row])
            outcomes[name] = None
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            outcomes[name] = exc

    calls = [threading.Thread(target=add, args=(name, row)) for name, row in
             (("a", record("a")), ("dup", duplicate), ("b", record("b")))]
    with queue._writer:
        for call in calls:
            call.start()
        while len(queue._adds) < 3:
            time.sleep(0.01)
    for call in calls:
        call.join()

    assert outcomes["a"] is None and outcomes["b"] is None
    assert "UNIQUE constraint failed: generations.id" in str(outcomes["dup"])
    assert {r.prompt for r in queue.list(RowFilter(["default"]))} == {"first", "a", "b"}


def test_cancel_wins_over_a_running_worker(queue: SqlQueue) -> None:
    row = record()
    queue.add([row])
    queue.claim()
    assert queue.report_progress(row.id, 0.5) is True
    assert queue.cancel(row.id) is True
    assert queue.report_progress(row.id, 0.75) is False  # the worker learns at its next step
    assert queue.finish(row.id, [{"key": "x"}], {}) is False
    assert queue.get(row.id).status == "cancelled"
    assert queue.cancel(row.id) is False  # already ended


def test_a_batch_finishes_in_one_go_except_the_row_cancelled_meanwhile(queue: SqlQueue) -> None:
    rows = [record(str(i)) for i in range(4)]
    queue.add(rows)
    while queue.claim() is not None:
        pass
    assert queue.cancel(rows[2].id) is True

    done = queue.finish_many([(r.id, [{"key": f"{r.id}/0.png"}], {"n": i}) for i, r in enumerate(rows)])

    assert done == {rows[0].id, rows[1].id, rows[3].id}
    stored = [queue.get(r.id) for r in rows]
    assert [s.status for s in stored] == ["succeeded", "succeeded", "cancelled", "succeeded"]
    assert stored[3].images == [{"key": f"{rows[3].id}/0.png"}] and stored[3].provenance == {"n": 3}
    assert stored[0].progress == 1.0 and stored[0].completed_at is not None


def test_recover_requeues_then_fails_after_max_attempts(queue: SqlQueue) -> None:
    row = record()
    queue.add([row])
    queue.claim()
    first = queue.recover(max_attempts=2)
    assert first.requeued == [row.id] and not first.failed
    assert queue.get(row.id).status == "queued"
    queue.claim()  # second attempt, interrupted again
    second = queue.recover(max_attempts=2)
    assert not second.requeued and [r.id for r in second.failed] == [row.id]
    failed = queue.get(row.id)
    assert failed.status == "failed" and "max_attempts=2" in failed.error_message


def test_listing_filters_by_namespace_status_and_model(queue: SqlQueue) -> None:
    queue.add([record("a", "ns1"), record("b", "ns1"), record("c", "ns2")])
    queue.claim()
    ns1 = RowFilter(["ns1"])
    assert queue.count(ns1) == 2
    assert [r.prompt for r in queue.list(RowFilter(["ns1"], ["queued"]))] == ["b"]
    assert queue.count(RowFilter(["ns1", "ns2"], model="m")) == 3
    assert queue.count(RowFilter(["ns1"], model="other")) == 0


def test_worker_pool_drains_with_the_handler(queue: SqlQueue) -> None:
    queue.add([record(str(i)) for i in range(3)])
    seen: list[str] = []

    def handler(job: GenerationRecord) -> None:
        seen.append(job.prompt)
        queue.finish(job.id, [], {})

    assert WorkerPool(queue, handler).drain() == 3
    assert seen == ["0", "1", "2"]
    assert queue.count(RowFilter(["default"], ["succeeded"])) == 3


def test_an_offset_past_what_sqlite_holds_lists_nothing(queue: SqlQueue) -> None:
    """``?page=10**18`` makes an offset over SQLite's signed 64-bit INTEGER: past every row."""
    queue.add([record("a")])
    everyone = RowFilter(["default"])
    assert queue.list(everyone, offset=10**20, limit=50) == []
    assert queue.list(everyone, offset=1, limit=50) == []
    assert [r.prompt for r in queue.list(everyone, limit=10**20)] == ["a"]


def test_a_lane_claims_its_models_rows_or_all_but_theirs(queue: SqlQueue) -> None:
    """The remote models' pool and the local models' take apart the same queue, each oldest
    first."""
    rows = [record("remote 1"), record("local 1"), record("remote 2")]
    rows[0].model_name = rows[2].model_name = "gemini"
    queue.add(rows)
    remote, local = Lane(frozenset({"gemini"})), Lane(frozenset({"gemini"}), excluded=True)

    assert queue.claim(local).prompt == "local 1"
    assert queue.claim(local) is None
    assert [queue.claim(remote).prompt for _ in range(2)] == ["remote 1", "remote 2"]
    assert queue.claim(remote) is None
    queue.add([record("any")])
    assert queue.claim(Lane(frozenset(), excluded=True)).prompt == "any"  # no remote model
