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
from imagehub.testing import ServerProcess


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(folder: Path, batch: int, seconds: float) -> dict[str, float]:
    from imagehub.engines.diffusers import DiffusersEngine

    engine = DiffusersEngine(str(folder), device="cpu")
    engine.load()

    def one_batch(start: int) -> None:
        requests = [EngineRequest(prompt=gt.PROMPT, width=512, height=512, seed=start + i,
                                  num_inference_steps=1) for i in range(batch)]
        for result in engine.generate_batch(requests, [no_progress] * batch):
            assert not isinstance(result, Exception), result
            encode_png(result.images[0])

    one_batch(0)
    images, cpu, started = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        one_batch(images)
        images += batch
    wall = time.perf_counter() - started
    return {"images_per_s": images / wall, "cpu_ms": (time.process_time() - cpu) / images * 1000}


def served(folder: Path, root: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    work = gt.Workload("tiny", folder, 1, 0.0, "512", 512)
    data_dir = root / "hub"
    gt.write_bench_catalog(data_dir, work, "cpu", {})
    server = ServerProcess(data_dir, {
        "IMAGEHUB_MAX_BATCH_SIZE": str(args.batch), "IMAGEHUB_BATCH_WAIT_MS": "10",
        "IMAGEHUB_WORKER_CONCURRENCY": "2", "IMAGEHUB_RATE_LIMIT_PER_MINUTE": "0",
        "IMAGEHUB_PRELOAD_MODELS": "bench"}).start(timeout=300)
    try:
        assert server.proc is not None
        asyncio.run(gt._warm_up(server, work, args.clients))
        out = {}
        for mode in ("sync", "queue"):
            cpu = cpu_seconds(server.proc.pid)
            stats = asyncio.run(gt._load(server, work, args.clients, args.seconds, mode))
            used = cpu_seconds(server.proc.pid) - cpu
            out[mode] = {"images_per_s": stats["images_per_s"], "p50": stats["p50"],
                         "p99": stats["p99"], "errors": stats["errors"],
                         "cpu_ms": used / max(stats["completed"], 1) * 1000}
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
    results = served(folder, root, args)
    print(f"\nserving cost on {os.cpu_count()} cores: tiny SD 64² → 512² PNG, batch {args.batch}, "
          f"{args.clients} clients")
    print(f"{'':<28} {'images/s':>9} {'CPU ms/image':>13} {'+ms vs base':>12} {'p50 s':>7} {'p99 s':>7}")
    print(f"{'engine + PNG, in-process':<28} {base['images_per_s']:>9.1f} {base['cpu_ms']:>13.1f}")
    for mode, r in results.items():
        errors = f"  ({r['errors']} errors)" if r["errors"] else ""
        print(f"{'imagehub ' + mode + ' over HTTP':<28} {r['images_per_s']:>9.1f} {r['cpu_ms']:>13.1f} "
              f"{r['cpu_ms'] - base['cpu_ms']:>12.1f} {r['p50']:>7.3f} {r['p99']:>7.3f}{errors}")


if __name__ == "__main__":
    main()
