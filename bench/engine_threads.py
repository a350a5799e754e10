"""Where the engine is called from must not matter: the same queued jobs drained from the main
thread, from another thread, and through the worker pool, in one run (ms per job; compare the
three, don't trust absolutes). Try it with OMP_NUM_THREADS=1 as well.

Before engines ran their torch work on one thread of their own (``imagehub.engines.thread``), on
2 cores with torch's default 2 threads this printed 1.41x for another thread and 1.61x for the pool
(each calling thread had its own OpenMP team); since, all three are within noise (0.99x, 0.99x).

    python bench/engine_threads.py [--jobs 20]"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from imagehub.config import load_settings
from imagehub.engines.diffusers.dummy import build_tiny_sd
from imagehub.jobs.queue import RowFilter
from imagehub.services.hub import Hub
from imagehub.services.keys import ANONYMOUS
from imagehub.testing import write_catalog

BODY = {"model": "tiny-sd", "prompt": "a red cube on a table", "resolution": "512",
        "aspect_ratio": "1:1", "seed": 1}


def enqueue(hub: Hub, jobs: int) -> None:
    for start in range(0, jobs, 4):
        hub.generations.enqueue(ANONYMOUS, {**BODY, "num_generations": min(4, jobs - start)})


def timed(run, jobs: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / jobs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20)
    jobs = parser.parse_args().jobs
    root = Path(tempfile.mkdtemp(prefix="imagehub-threads-"))
    write_catalog(root / "hub", build_tiny_sd(root / "tiny-sd"))
    hub = Hub(load_settings(data_dir=root / "hub", auth_enabled=False))
    hub.start(run_workers=False)
    enqueue(hub, 1)
    hub.workers.drain()  # model loaded, warmed up

    enqueue(hub, jobs)
    main_ms = timed(hub.workers.drain, jobs)

    enqueue(hub, jobs)
    other = threading.Thread(target=hub.workers.drain)
    other_ms = timed(lambda: (other.start(), other.join()), jobs)

    def through_pool() -> None:
        hub.workers.start()
        while hub.queue.count(RowFilter(["default"], ["queued", "processing"])):
            time.sleep(0.02)

    enqueue(hub, jobs)
    pool_ms = timed(through_pool, jobs)
    hub.stop()
    print(f"main thread   {main_ms:7.1f} ms/job")
    print(f"other thread  {other_ms:7.1f} ms/job  ({other_ms / main_ms:.2f}x)")
    print(f"worker pool   {pool_ms:7.1f} ms/job  ({pool_ms / main_ms:.2f}x)")


if __name__ == "__main__":
    main()
