"""Claiming a batch of queued jobs against claiming them one by one, on real SQLite, in one run.

    python bench/queue_claims.py [--queued 64] [--batch 32] [--runs 200]

``SqlQueue.claim_batch`` reads the model's queued rows, keeps the compatible ones and takes them
with one conditional UPDATE ... RETURNING; the baseline is ``claim()`` called ``--batch`` times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

from sqlalchemy import update

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=200)
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


if __name__ == "__main__":
    main()
