"""Where the engine runs matters on a small CPU: the same queued jobs drained on the main thread,
on another thread, and through the worker pool, in one run (ms per job; compare, don't trust
absolutes). Try it with OMP_NUM_THREADS=1 too.

    python bench/engine_threads.py
"""
import pathlib
import tempfile
import threading
import time

from imagehub.config import load_settings
from imagehub.services.hub import Hub
from imagehub.testing import write_catalog
from imagehub.engines.diffusers.dummy import build_tiny_sd
from imagehub.services.keys import ANONYMOUS
from imagehub.jobs.queue import RowFilter
d = pathlib.Path(tempfile.mkdtemp()); m = build_tiny_sd(d/"m"); write_catalog(d/"hub", m)
hub = Hub(load_settings(data_dir=d/"hub", auth_enabled=False)); hub.start(run_workers=False)
body = {"model":"tiny-sd","prompt":"a red cube on a table","resolution":"512","aspect_ratio":"1:1","seed":1}
hub.generations.enqueue(ANONYMOUS, body); hub.workers.drain()
for i in range(5): hub.generations.enqueue(ANONYMOUS, {**body, "num_generations": 4})
t=time.perf_counter(); n=hub.workers.drain(); print("main-thread drain", (time.perf_counter()-t)/n*1000, "ms/job")
for i in range(5): hub.generations.enqueue(ANONYMOUS, {**body, "num_generations": 4})
th = threading.Thread(target=hub.workers.drain); t=time.perf_counter(); th.start(); th.join(); print("other-thread drain", (time.perf_counter()-t)/20*1000, "ms/job")
for i in range(5): hub.generations.enqueue(ANONYMOUS, {**body, "num_generations": 4})
t=time.perf_counter(); hub.workers.start()
while hub.queue.count(RowFilter(["default"], ["queued","processing"])): time.sleep(0.02)
print("worker pool", (time.perf_counter()-t)/20*1000, "ms/job")
hub.stop()
