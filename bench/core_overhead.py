"""imagehub's own overhead on one machine, as ratios against baselines measured in the same run.

1. Sync generate over HTTP vs calling the engine in-process (same tiny pipeline, same params).
2. Enqueue rate over HTTP (workers off, so only the API and the store are measured).
3. Queue completion rate vs a plain loop calling the engine on the same jobs.

    python bench/core_overhead.py [--requests 30] [--enqueues 2000] [--jobs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from imagehub.engines.base import EngineRequest, no_progress
from imagehub.storage.images import encode_png
from imagehub.testing import ServerProcess, write_catalog

POLL_S = 0.05  # completion polling: a cheap count query, so it does not load the server
PARAMS = {"model": "tiny-sd", "prompt": "a red cube on a table", "resolution": "512",
          "aspect_ratio": "1:1", "seed": 1}


def engine_in_process(model_dir: Path):  # type: ignore[no-untyped-def]
    from imagehub.engines.diffusers import DiffusersEngine

    engine = DiffusersEngine(str(model_dir), device="cpu")
    engine.load()
    request = EngineRequest(prompt=PARAMS["prompt"], width=512, height=512, seed=1,
                            num_inference_steps=2, guidance_scale=7.5, params=dict(PARAMS))
    return engine, request


def bench_sync(server: ServerProcess, model_dir: Path, n: int) -> dict[str, float]:
    engine, request = engine_in_process(model_dir)
    http_ms, engine_ms, engine_png_ms = [], [], []
    with server.client() as api:
        for _ in range(3):  # warm both paths
            api.post("/api/ai/images/generate", json=PARAMS).raise_for_status()
            engine.generate(request, no_progress)
        for _ in range(n):  # interleaved, so drift hits both alike
            t = time.perf_counter()
            api.post("/api/ai/images/generate", json=PARAMS).raise_for_status()
            http_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            result = engine.generate(request, no_progress)
            engine_ms.append((time.perf_counter() - t) * 1000)
            encode_png(result.images[0])
            engine_png_ms.append((time.perf_counter() - t) * 1000)
    h, e, p = (statistics.median(x) for x in (http_ms, engine_ms, engine_png_ms))
    h_min, e_min = min(http_ms), min(engine_ms)  # the floor of each: least disturbed by noise
    return {"http_ms": h, "engine_ms": e, "engine_png_ms": p, "overhead_ms": h - e,
            "overhead_pct": 100 * (h - e) / e, "overhead_vs_engine_png_ms": h - p,
            "http_min_ms": h_min, "engine_min_ms": e_min, "overhead_min_ms": h_min - e_min,
            "overhead_min_pct": 100 * (h_min - e_min) / e_min}


def _enqueue_wrk(url: str, key: str, seconds: int, concurrency: int) -> float:
    """Enqueue rate measured by wrk (a light C load generator) when it is installed."""
    script = Path(tempfile.mkdtemp()) / "enqueue.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.body = \'{"model": "tiny-sd", "prompt": "queued"}\'\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("non2xx=%d\\n", summary.errors.status))\n'
        'end\n'
    )
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script),
                          f"{url}/api/ai/queue"], capture_output=True, text=True, check=True).stdout
    assert "non2xx=0" in out, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


async def _enqueue_many(url: str, key: str, total: int, concurrency: int) -> float:
    body = {"model": "tiny-sd", "prompt": "queued"}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                (await client.post("/api/ai/queue", json=body)).raise_for_status()

        for _ in range(50):
            await one()
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return total / (time.perf_counter() - start)


def bench_completion(server: ServerProcess, model_dir: Path, jobs: int) -> dict[str, float]:
    engine, request = engine_in_process(model_dir)
    start = time.perf_counter()
    for i in range(jobs):
        request.seed = i
        encode_png(engine.generate(request, no_progress).images[0])
    loop_rate = jobs / (time.perf_counter() - start)
    del engine
    with server.client() as api:
        api.post("/api/ai/images/generate", json=PARAMS).raise_for_status()  # model loaded
        warm_rows = api.get("/api/ai/generations", params={"status": "succeeded", "page_size": 1,
                                                           "model": "tiny-sd"}).json()["total_entries"]
        start = time.perf_counter()
        ids = []
        for i in range(0, jobs, 4):
            body = {**PARAMS, "seed": i, "num_generations": min(4, jobs - i)}
            ids += [g["generation_id"] for g in api.post("/api/ai/queue", json=body).json()["generations"]]
        done = 0
        while done < len(ids):  # a cheap count every POLL_S: the poll must not load the server
            time.sleep(POLL_S)
            done = api.get("/api/ai/generations", params={"status": "succeeded", "page_size": 1,
                                                          "model": "tiny-sd"}).json()["total_entries"]
            done -= warm_rows
        queue_rate = jobs / (time.perf_counter() - start)
        failed = api.get("/api/ai/generations", params={"status": "failed"}).json()["total_entries"]
    assert failed == 0, f"{failed} jobs failed"
    return {"loop_jobs_per_s": loop_rate, "queue_jobs_per_s": queue_rate,
            "queue_vs_loop_pct": 100 * queue_rate / loop_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--enqueues", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads for both sides (0: torch's default)")
    args = parser.parse_args()
    if args.torch_threads:  # the same for the in-process baseline and the server it starts
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
        import torch

        torch.set_num_threads(args.torch_threads)

    from imagehub.engines.diffusers.dummy import build_tiny_sd

    root = Path(tempfile.mkdtemp(prefix="imagehub-bench-"))
    model_dir = build_tiny_sd(root / "tiny-sd")

    write_catalog(root / "hub", model_dir)
    server = ServerProcess(root / "hub").start()
    try:
        sync = bench_sync(server, model_dir, args.requests)
        completion = bench_completion(server, model_dir, args.jobs)
    finally:
        server.stop()

    write_catalog(root / "api-only", model_dir)
    api_only = ServerProcess(root / "api-only", {"IMAGEHUB_RUN_WORKERS": "false"}).start()
    try:
        if shutil.which("wrk"):
            rate, tool = _enqueue_wrk(api_only.url, api_only.key, 10, args.concurrency), "wrk"
        else:
            rate = asyncio.run(_enqueue_many(api_only.url, api_only.key, args.enqueues, args.concurrency))
            tool = "httpx"
    finally:
        api_only.stop()

    threads = args.torch_threads or "default"
    print(f"imagehub core overhead (tiny SD, 256² native → 512², 2 steps, CPU, torch threads: {threads})")
    print(f"  sync over HTTP          {sync['http_ms']:8.1f} ms/request (median of {args.requests})")
    print(f"  engine in-process       {sync['engine_ms']:8.1f} ms/request")
    print(f"  engine + PNG encode     {sync['engine_png_ms']:8.1f} ms/request")
    print(f"  overhead (medians)      {sync['overhead_ms']:8.1f} ms = {sync['overhead_pct']:.1f}% "
          f"(vs engine+PNG: {sync['overhead_vs_engine_png_ms']:.1f} ms)")
    print(f"  overhead (minimums)     {sync['overhead_min_ms']:8.1f} ms = {sync['overhead_min_pct']:.1f}% "
          f"({sync['http_min_ms']:.1f} vs {sync['engine_min_ms']:.1f} ms)")
    print(f"  enqueue over HTTP       {rate:8.0f} requests/s ({args.concurrency} connections, {tool})")
    print(f"  plain engine loop       {completion['loop_jobs_per_s']:8.2f} jobs/s ({args.jobs} jobs)")
    print(f"  queue completion        {completion['queue_jobs_per_s']:8.2f} jobs/s "
          f"= {completion['queue_vs_loop_pct']:.1f}% of the loop")


if __name__ == "__main__":
    main()
