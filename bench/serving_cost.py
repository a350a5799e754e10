"""What serving an image costs the server's CPU, beyond making it: the ceiling the serving path
puts on images/s when the accelerator is fast.

    python bench/serving_cost.py [--clients 64] [--seconds 15] [--batch 16]

A tiny pipeline (native 64², 1 step, scaled to 512²) stands in for a fast GPU model, so the
engine's own cost is small and the serving path's shows. In one run:

1. baseline: the same engine in-process, batches of ``--batch``, each image PNG-encoded (what any
   server must do), CPU ms per image (process time) and images/s;
2. imagehub over HTTP, ``--clients`` concurrent clients, sync then queued (completion from the
   event stream), the server process's CPU ms per image (``/proc/<pid>/stat``) and images/s.

The difference of CPU ms per image is the serving path's cost: at 120 images/s, every
millisecond of it is 12% of a core, much of it under the GIL the engine thread also needs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_throughput as gt  # the load generator and catalog writer are shared

from imagehub.engines.base import EngineRequest, no_progress
from imagehub.storage.images import encode_png
from imagehub.testing import ServerProcess, child_pids


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU time so far of a process alone, and with its live children (a model's
    own process)."""
    times = []
    for stat in [Path(f"/proc/{p}/stat") for p in (pid, *child_pids(pid))]:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        times.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return times[0], sum(times)


def baseline(folder: Path, batch: int, seconds: float) -> dict[str, float]:
    from imagehub.engines.diffusers import DiffusersEngine

    engine = DiffusersEngine(str(folder), device="cpu")
    engine.load()
    engine_seconds = 0.0

    def one_batch(start: int) -> None:
        nonlocal engine_seconds
        requests = [EngineRequest(prompt=gt.PROMPT, width=512, height=512, seed=start + i,
                                  num_inference_steps=1) for i in range(batch)]
        began = time.perf_counter()
        results = engine.generate_batch(requests, [no_progress] * batch)
        engine_seconds += time.perf_counter() - began
        for result in results:
            assert not isinstance(result, Exception), result
            encode_png(result.images[0])

    one_batch(0)
    engine_seconds = 0.0
    images, cpu, started = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        one_batch(images)
        images += batch
    wall = time.perf_counter() - started
    return {"images_per_s": images / wall, "cpu_ms": (time.process_time() - cpu) / images * 1000,
            "call_ms": engine_seconds / (images / batch) * 1000}


def served(folder: Path, root: Path, args: argparse.Namespace,
           process: bool) -> dict[str, dict[str, float]]:
    work = gt.Workload("tiny", folder, 1, 0.0, "512", 512)
    data_dir = root / f"hub-{process}"
    gt.write_bench_catalog(data_dir, work, "cpu", {"process": process})
    server = ServerProcess(data_dir, {
        "IMAGEHUB_MAX_BATCH_SIZE": str(args.batch), "IMAGEHUB_BATCH_WAIT_MS": "10",
        "IMAGEHUB_WORKER_CONCURRENCY": "2", "IMAGEHUB_RATE_LIMIT_PER_MINUTE": "0",
        "IMAGEHUB_PRELOAD_MODELS": "bench"}).start(timeout=300)
    try:
        assert server.proc is not None
        asyncio.run(gt._warm_up(server, work, args.clients))
        out = {}
        for mode in ("sync", "queue"):
            cpu, (call_s, calls) = cpu_seconds(server.proc.pid), gt.engine_calls(server)
            stats = asyncio.run(gt._load(server, work, args.clients, args.seconds, mode))
            cpu_after = cpu_seconds(server.proc.pid)
            call_s2, calls2 = gt.engine_calls(server)
            images = max(stats["completed"], 1)
            out[mode] = {"images_per_s": stats["images_per_s"], "p50": stats["p50"],
                         "p99": stats["p99"], "errors": stats["errors"],
                         "cpu_ms": (cpu_after[1] - cpu[1]) / images * 1000,
                         "server_ms": (cpu_after[0] - cpu[0]) / images * 1000,
                         "call_ms": (call_s2 - call_s) / max(calls2 - calls, 1) * 1000,
                         "batch": stats["completed"] / max(calls2 - calls, 1)}
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    from imagehub.engines.diffusers import dummy

    root = Path(tempfile.mkdtemp(prefix="imagehub-serving-cost-"))
    folder = dummy.build_tiny_sd(root / "tiny", sample_size=8)  # native 64²: a cheap engine
    base = baseline(folder, args.batch, args.seconds)
    results = {f"{mode}, {where}": r for process, where in ((False, "thread"), (True, "process"))
               for mode, r in served(folder, root, args, process).items()}
    print(f"\nserving cost on {os.cpu_count()} cores: tiny SD 64² → 512² PNG, batch {args.batch}, "
          f"{args.clients} clients (engine in the server's thread, then in its own process)")
    print(f"{'':<34} {'images/s':>9} {'CPU ms/image':>13} {'+ms vs base':>12} {'p50 s':>7} "
          f"{'p99 s':>7} {'engine ms/call':>15} {'images/call':>12} {'server-only ms':>15}")
    print(f"{'engine + PNG, in-process':<34} {base['images_per_s']:>9.1f} {base['cpu_ms']:>13.1f} "
          f"{'':>12} {'':>7} {'':>7} {base['call_ms']:>15.1f} {args.batch:>12}")
    for label, r in results.items():
        errors = f"  ({r['errors']} errors)" if r["errors"] else ""
        server_only = f"{r['server_ms']:>15.1f}" if label.endswith("process") else f"{'':>15}"
        print(f"{'imagehub ' + label:<34} {r['images_per_s']:>9.1f} {r['cpu_ms']:>13.1f} "
              f"{r['cpu_ms'] - base['cpu_ms']:>12.1f} {r['p50']:>7.3f} {r['p99']:>7.3f} "
              f"{r['call_ms']:>15.1f} {r['batch']:>12.1f} {server_only}{errors}")
    print("server-only ms: CPU per image of the server process without its model's process (the "
          "serving path: HTTP, rows, events, PNG encoding)")


if __name__ == "__main__":
    main()
