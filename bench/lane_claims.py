"""What the two worker lanes cost a claim, on real SQLite, against a claim with no lane in the same
run (``jobs.queue.Lane``: the local models' workers take every row but the remote models', the
remote models' workers theirs alone).

    python bench/lane_claims.py [--queued 5000] [--remote-queued 0] [--runs 300]

A queue of ``--queued`` local rows (and ``--remote-queued`` rows of a remote model, older); each
line times the statement that finds the oldest row a claim would take (the scan; the UPDATE that
takes it is the same for all), median and p99 in ms, and its ratio to the baseline:

1. baseline: no lane (the one pool of before);
2. local lane: ``model_name NOT IN`` the 5 remote ids;
3. remote lane with a provider key set: ``model_name IN`` the remote ids, with nothing of theirs
   queued, with the (status, model_name, order_key) index of migration 0005 and without it;
4. remote lane with no provider set: no statement at all (``SqlQueue.claim`` returns at once).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

from sqlalchemy import insert, text

from imagehub.db.records import GenerationRecord
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.jobs import queue as q
from imagehub.jobs.queue import Lane, SqlQueue

REMOTE = frozenset({"nano-banana-2", "nano-banana", "nano-banana-2-lite", "google-nano-banana-pro",
                    "gpt-image-1"})


def rows(count: int, model: str, start: int) -> list[dict[str, object]]:
    now = time.time_ns()
    return [{"id": str(uuid.uuid4()), "namespace": "default", "key_id": None, "model_name": model,
             "media_type": "image", "source": "queue", "prompt": "a cat",
             "params": {"prompt": "a cat"}, "resolved": {"prompt": "a cat", "seed": i},
             "carried": {}, "provenance": {}, "status": "queued", "num_images": 1, "images": [],
             "attempts": 0, "idempotency_key": None, "enqueued_at": now // 10**9,
             "order_key": now + start + i} for i in range(count)]


def timed(queue: SqlQueue, statement: object, params: dict[str, object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        with queue._write_core() as connection:
            connection.scalar(statement, params)
        times.append((time.perf_counter() - began) * 1000)
    return times


def empty_remote_claims(queue: SqlQueue, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        queue.claim(Lane(frozenset()))
        times.append((time.perf_counter() - began) * 1000)
    return times


def line(name: str, times: list[float], baseline: float) -> None:
    median = statistics.median(times)
    p99 = sorted(times)[int(len(times) * 0.99) - 1]
    print(f"{name:<44} {median:8.3f} {p99:8.3f} {median / baseline:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=5000)
    parser.add_argument("--remote-queued", type=int, default=0)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        queue = SqlQueue(make_sessionmaker(engine))
        with engine.begin() as connection:
            table = GenerationRecord.__table__
            if args.remote_queued:
                connection.execute(insert(table), rows(args.remote_queued, "nano-banana-2", 0))
            connection.execute(insert(table), rows(args.queued, "tiny-sd", args.remote_queued))
        models = {"models": sorted(REMOTE)}
        print(f"{args.queued} local rows queued, {args.remote_queued} remote; {args.runs} runs")
        print(f"{'statement':<44} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>9}")
        base = timed(queue, q._OLDEST_QUEUED, {}, args.runs)
        baseline = statistics.median(base)
        line("baseline: no lane", base, baseline)
        line("local lane (NOT IN remote ids)", timed(queue, q._OLDEST_BUT, models, args.runs),
             baseline)
        line("remote lane, keys set, index 0005", timed(queue, q._OLDEST_OF, models, args.runs),
             baseline)
        line("remote lane, no provider set", empty_remote_claims(queue, args.runs), baseline)
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_generations_status_model_order"))
        line("remote lane, keys set, without index 0005",
             timed(queue, q._OLDEST_OF, models, args.runs), baseline)


if __name__ == "__main__":
    main()
