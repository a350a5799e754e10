"""The queue's writes on real SQLite, each against a baseline in the same run.

    python bench/queue_claims.py [--queued 64] [--batch 32] [--runs 200] [--threads 16]

1. Claims: ``SqlQueue.claim_batch`` reads the model's queued rows, keeps the compatible ones and
   takes them with one conditional UPDATE ... RETURNING; the baseline is ``claim()`` called
   ``--batch`` times.
2. Finishing a batch: ``SqlQueue.finish_many`` (one executemany UPDATE between two SELECTs)
   against ``finish()`` called for each row.
3. Adds from ``--threads`` threads at once (a batch's sync calls each store their row as the batch
   ends): ``SqlQueue.add`` (one writer per process, concurrent calls in one transaction) against
   each call inserting in a transaction of its own, as ``add`` did before. Latency per call.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import insert, update

from imagehub.db.records import GenerationRecord
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.jobs.batching import batch_key
from imagehub.jobs.queue import SqlQueue


def record(i: int) -> GenerationRecord:
    now = time.time_ns() + i
    resolved = {"prompt": "a cat", "aspect_ratio": "1:1", "resolution": "512",
                "num_inference_steps": 1, "seed": i}
    return GenerationRecord(
        id=str(uuid.uuid4()), namespace="default", key_id=None, model_name="m", media_type="image",
        source="queue", prompt="a cat", params=dict(resolved), resolved=resolved, provenance={},
        status="queued", num_images=1, images=[], attempts=0, idempotency_key=None,
        enqueued_at=now // 10**9, order_key=now)


def concurrent_adds(add: Callable[[GenerationRecord], None], threads: int, per_thread: int,
                    ) -> tuple[float, float, float]:
    """(adds/s, p50 ms, p99 ms) of ``threads`` threads each adding ``per_thread`` rows."""
    latencies: list[float] = []
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            row = record(t * 100_000 + i)
            began = time.perf_counter()
            add(row)
            latencies.append(time.perf_counter() - began)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - began
    latencies.sort()
    return (len(latencies) / wall, latencies[len(latencies) // 2] * 1000,
            latencies[int(len(latencies) * 0.99)] * 1000)


def fresh_queue() -> SqlQueue:
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/queue.db")
    migrate(engine)
    return SqlQueue(make_sessionmaker(engine))


def own_transactions(queue: SqlQueue) -> Callable[[GenerationRecord], None]:
    """The baseline: each row in a transaction of its own, writers meeting SQLite's busy handler."""
    sessions = queue._sessions
    columns = GenerationRecord.__table__.columns.keys()

    def add(row: GenerationRecord) -> None:
        with sessions.begin() as session:
            session.execute(insert(GenerationRecord), [{c: getattr(row, c) for c in columns}])

    return add


def group_commits(queue: SqlQueue) -> Callable[[GenerationRecord], None]:
    return lambda row: queue.add([row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/queue.db")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    queue = SqlQueue(sessions)
    queue.add([record(i) for i in range(args.queued)])
    key = batch_key(record(0).resolved)

    def requeue() -> None:
        with sessions.begin() as session:
            session.execute(update(GenerationRecord).values(status="queued"))

    def timed(claim) -> float:  # type: ignore[no-untyped-def]
        total = 0.0
        for _ in range(args.runs):
            requeue()
            started = time.perf_counter()
            assert len(claim()) == args.batch
            total += time.perf_counter() - started
        return total / args.runs * 1000

    batched = timed(lambda: queue.claim_batch("m", key, args.batch, batch_key))
    single = timed(lambda: [queue.claim() for _ in range(args.batch)])
    print(f"{args.batch} jobs from {args.queued} queued, mean of {args.runs}:")
    print(f"  claim() x {args.batch}   {single:7.2f} ms")
    print(f"  claim_batch        {batched:7.2f} ms  ({single / batched:.1f}x faster)")

    images = [{"url": "/files/x/0.png", "width": 512, "height": 512}]
    provenance = {"engine": {"pipeline": "StableDiffusionPipeline", "batch_size": args.batch}}

    def finish_all(finish) -> None:  # type: ignore[no-untyped-def]
        rows = queue.claim_batch("m", key, args.batch, batch_key)
        finish([(row.id, images, provenance) for row in rows])

    def one_by_one(outcomes) -> None:  # type: ignore[no-untyped-def]
        for generation_id, imgs, prov in outcomes:
            queue.finish(generation_id, imgs, prov)

    many = timed(lambda: finish_all(queue.finish_many) or [0] * args.batch)
    single_finish = timed(lambda: finish_all(one_by_one) or [0] * args.batch)
    print(f"finishing a batch of {args.batch} (claim included), mean of {args.runs}:")
    print(f"  finish() x {args.batch}    {single_finish:7.2f} ms")
    print(f"  finish_many        {many:7.2f} ms  ({single_finish / many:.1f}x faster)")

    per_thread = max(10, args.runs // 4)
    print(f"{args.threads} threads adding {per_thread} rows each at once (two rounds):")
    for _ in range(2):
        for label, queue_add in (("own transactions", own_transactions(fresh_queue())),
                                 ("SqlQueue.add", group_commits(fresh_queue()))):
            rate, p50, p99 = concurrent_adds(queue_add, args.threads, per_thread)
            print(f"  {label:<17} {rate:7.0f} adds/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms")


if __name__ == "__main__":
    main()
