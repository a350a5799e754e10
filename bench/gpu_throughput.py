"""Images per second: plain diffusers against imagehub served over HTTP, one run, one device.

    python bench/gpu_throughput.py                     # random-weight SD-Turbo on CUDA, tiny on CPU
    python bench/gpu_throughput.py --model /models/sd-turbo --steps 1 --resolution 512
    python bench/gpu_throughput.py --families sd-turbo,sdxl --out results.json

For each model, in the same process and on the same device:

1. plain diffusers, batch 1, eager, one render after another (what a plain script gets);
2. plain diffusers at its best batch (the fastest of ``--batches``);
3. imagehub over HTTP (``imagehub serve`` in a subprocess), ``--clients`` concurrent clients,
   first through ``POST /api/ai/images/generate`` (sync), then ``POST /api/ai/queue`` with the
   completion read from ``/api/events`` (queue). Every served image is stored as a PNG.

Prints images/s, p50/p99 latency, mean GPU utilisation (NVML, when present) and the ratios of
served to plain. With no ``--model``, the full-size architecture is built with random weights
(compute does not depend on them): SD-Turbo (SD2.1 UNet, OpenCLIP-H) at 512² and 1 step; SDXL at
1024² and 4 steps; FLUX.1-schnell (12B transformer, T5-XXL; 34 GB in bf16) at 1024² and 4 steps.
On a CPU the tiny test pipeline stands in (512², 2 steps).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from imagehub.testing import ServerProcess

PROMPT = "a photo of a cat sitting on a red chair"
JOB_TIMEOUT_S = 120.0
"""A queued job whose completed event has not come by then counts as an error."""


@dataclass
class Workload:
    """One model and the request every measurement makes of it."""

    name: str
    folder: Path
    steps: int
    guidance: float
    resolution: str
    size: int

    def plain_kwargs(self) -> dict[str, Any]:
        return {"num_inference_steps": self.steps, "guidance_scale": self.guidance,
                "width": self.size, "height": self.size}

    def api_body(self) -> dict[str, Any]:
        return {"model": "bench", "prompt": PROMPT, "resolution": self.resolution,
                "aspect_ratio": "1:1", "num_inference_steps": self.steps}


@dataclass
class Row:
    """One measured configuration."""

    config: str
    images_per_s: float
    p50_s: float
    p99_s: float
    gpu_util_pct: float | None
    batch: int | None = None
    padded_pct: float | None = None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Device and sampling
# ---------------------------------------------------------------------------------------------


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


class GpuSampler:
    """Mean GPU utilisation over a phase, sampled from NVML every 100 ms (None without NVML)."""

    def __init__(self) -> None:
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML (CPU, or no driver): utilisation is n/a
            self._handle = None

    def __enter__(self) -> Self:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._handle is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self._samples) if self._samples else None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def build_workloads(args: argparse.Namespace, device: str, root: Path) -> list[Workload]:
    import torch

    from imagehub.engines.diffusers import dummy

    if args.model:
        return [Workload("model", Path(args.model), args.steps or 1, args.guidance,
                         args.resolution, _size(args.resolution))]
    if device != "cuda":
        folder = dummy.build_tiny_sd(root / "tiny-sd", sample_size=64)  # native 512²
        return [Workload("tiny-sd (CPU)", folder, args.steps or 2, 0.0, "512", 512)]
    plans = {"sd-turbo": ("sd-turbo 512² 1 step", 1, "512", 512),
             "sdxl": ("sdxl 1024² 4 steps", 4, "1K", 1024),
             "flux-schnell": ("flux-schnell 1024² 4 steps", 4, "1K", 1024)}
    workloads = []
    for family in args.families.split(","):
        label, steps, resolution, size = plans[family]
        started = time.perf_counter()
        folder = dummy.build_full_size(family, root / family, dtype="bf16", device="cuda")
        torch.cuda.empty_cache()  # the built weights are saved: give their memory back
        print(f"built {family} in {time.perf_counter() - started:.1f} s", flush=True)
        workloads.append(Workload(label, folder, args.steps or steps, 0.0, resolution, size))
    return workloads


def random_taesd(root: Path, work: Workload) -> Path:
    """A TAESD folder (``AutoencoderTiny``'s own architecture) with random weights, built once per
    latent width: what ``"tiny_vae": "TAESD"`` in a ``--served`` configuration stands for (TAEF1,
    16 latent channels, for FLUX)."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    channels = AutoencoderKL.load_config(str(work.folder / "vae"))["latent_channels"]
    folder = root / f"taesd-{channels}"
    if not folder.exists():
        AutoencoderTiny(latent_channels=channels).save_pretrained(folder)
    return folder


def _size(resolution: str) -> int:
    from imagehub.catalog.sizes import RESOLUTION_BASES

    return RESOLUTION_BASES[resolution]


# ---------------------------------------------------------------------------------------------
# Plain diffusers
# ---------------------------------------------------------------------------------------------


def bench_plain(work: Workload, device: str, batches: list[int], runs: int) -> list[Row]:
    import torch
    from diffusers import DiffusionPipeline

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = DiffusionPipeline.from_pretrained(str(work.folder), torch_dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)

    def render(batch: int) -> float:
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
        started = time.perf_counter()
        with torch.inference_mode():  # a fair baseline: on a CPU, no_grad alone ran 18x slower
            pipe(prompt=[PROMPT] * batch, generator=generators, **work.plain_kwargs())
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    rows = [_plain_sequential(render, runs)]
    best: Row | None = None
    for batch in batches:
        try:
            row = _plain_batch(render, batch, max(2, runs // 8))
        except torch.OutOfMemoryError:
            print(f"plain batch {batch}: out of memory", flush=True)
            break
        print(f"plain batch {batch}: {row.images_per_s:.1f} images/s", flush=True)
        if best is None or row.images_per_s > best.images_per_s:
            best = row
    if best is not None:
        rows.append(best)
    pipe = None  # the closure's cell too: free the GPU memory before the server starts
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows


def _plain_sequential(render: Any, runs: int) -> Row:
    for _ in range(3):
        render(1)
    with GpuSampler() as gpu:
        times = [render(1) for _ in range(runs)]
    return Row("plain diffusers, batch 1, eager", runs / sum(times), percentile(times, 50),
               percentile(times, 99), gpu.mean, batch=1)


def _plain_batch(render: Any, batch: int, runs: int) -> Row:
    render(batch)
    with GpuSampler() as gpu:
        times = [render(batch) for _ in range(runs)]
    return Row(f"plain diffusers, best batch ({batch})", batch * runs / sum(times),
               percentile(times, 50), percentile(times, 99), gpu.mean, batch=batch)


# ---------------------------------------------------------------------------------------------
# imagehub over HTTP
# ---------------------------------------------------------------------------------------------


def write_bench_catalog(data_dir: Path, work: Workload, device: str,
                        options: dict[str, Any]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[models.bench]", 'backend = "diffusers"', f'source = "{work.folder}"',
             f'device = "{device}"', 'display_name = "bench"']
    if device == "cuda":
        lines.append('dtype = "bf16"')
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    lines += ["[models.bench.defaults]", f"num_inference_steps = {work.steps}",
              f"guidance_scale = {work.guidance}",  # as plain diffusers runs it (0: no CFG)
              f'resolution = "{work.resolution}"']
    (data_dir / "models.toml").write_text("\n".join(lines) + "\n")


def bench_served(work: Workload, device: str, args: argparse.Namespace, root: Path,
                 max_batch: int, options: dict[str, Any]) -> list[Row]:
    options = dict(options)
    max_batch = int(options.pop("max_batch", max_batch))  # server settings, not card options
    handoff = options.pop("handoff", None)
    workers = int(options.pop("worker_concurrency", args.worker_concurrency))
    data_dir = Path(tempfile.mkdtemp(prefix="hub-", dir=root))
    write_bench_catalog(data_dir, work, device, options)
    label = ", ".join([f"max batch {max_batch}"]
                      + ([f"handoff={handoff}"] if handoff is not None else [])
                      + ([f"{workers} workers"] if workers != args.worker_concurrency else []) + [
        f"{k}={Path(v).name if k == 'tiny_vae' else v}" for k, v in options.items()
        if k not in ("warmup_batches", "batch_buckets")] + _buckets_label(options))
    env = {"IMAGEHUB_MAX_BATCH_SIZE": str(max_batch),
           "IMAGEHUB_BATCH_WAIT_MS": str(args.batch_wait_ms),
           "IMAGEHUB_WORKER_CONCURRENCY": str(workers),
           "IMAGEHUB_ENCODE_WORKERS": str(args.encode_workers),
           "IMAGEHUB_RATE_LIMIT_PER_MINUTE": "0",
           "IMAGEHUB_PRELOAD_MODELS": "bench"}  # loaded and warmed up before the server answers
    if handoff is not None:
        env["IMAGEHUB_ENGINE_HANDOFF"] = str(handoff).lower()
    booted = time.perf_counter()
    server = ServerProcess(data_dir, env).start(timeout=600)
    try:
        print(f"served {label}: server up (model loaded, warmed up) in "
              f"{time.perf_counter() - booted:.1f} s", flush=True)
        if device == "cuda":  # which processes hold GPU memory: the server, its model's process
            assert server.proc is not None
            print(f"server pid {server.proc.pid}; GPU processes (pid, MiB): "
                  f"{gpu_processes()}", flush=True)
        started = time.perf_counter()
        asyncio.run(_warm_up(server, work, args.clients))
        print(f"served warm-up (load + first batches) {time.perf_counter() - started:.1f} s",
              flush=True)
        rows = []
        for mode in ("sync", "queue"):
            since = int(time.time()) + 1
            spy = _py_spy(server, args, re.sub(r"[^a-z0-9]+", "-", f"{label} {mode}".lower()))
            calls_before = engine_calls(server)
            with GpuSampler() as gpu:
                stats = asyncio.run(_load(server, work, args.clients, args.seconds, mode))
            engine = engine_figures(server, calls_before, data_dir, mode, since, stats["elapsed"])
            _summarise(spy)
            rows.append(Row(f"imagehub {mode}, {args.clients} clients, {label}",
                            stats["images_per_s"], stats["p50"], stats["p99"], gpu.mean,
                            batch=engine["batch"], padded_pct=engine["padded_pct"],
                            errors=stats["errors"],
                            extra={"completed": stats["completed"], "engine": engine}))
            print(f"served {mode}: {stats['images_per_s']:.1f} images/s; engine: "
                  f"{engine['calls_per_s']:.2f} calls/s of {engine['call_ms']:.0f} ms as the "
                  f"server waits on them, model runs of {engine['run_ms']:.0f} ms "
                  f"(busy {engine['run_busy_pct']:.0f}% of the time; "
                  f"{engine['padded_pct']:.0f}% of the slots run were padding)", flush=True)
        return rows
    finally:
        server.stop()


def _py_spy(server: ServerProcess, args: argparse.Namespace,
            name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
    """With ``--py-spy DIR``: ``py-spy record --gil`` of the server and its model's process for
    the load's seconds, to ``DIR/<name>.txt`` (None without py-spy or the option)."""
    # on PATH, or beside this Python (a venv that is not activated)
    exe = shutil.which("py-spy", path=os.pathsep.join([os.environ.get("PATH", ""),
                                                      str(Path(sys.executable).parent)]))
    if not args.py_spy or exe is None or server.proc is None:
        return None
    out = Path(args.py_spy) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [exe, "record", "--gil", "--subprocesses", "--nonblocking", "-r", "100",
               "-d", str(int(args.seconds)), "-f", "raw", "-o", str(out), "-p", str(server.proc.pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out


def _summarise(spy: tuple[subprocess.Popen[bytes], Path] | None) -> None:
    if spy is None:
        return
    proc, out = spy
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        err = b"timed out"
    if out.exists():  # the summary beside it (printed, it would crowd out the tables)
        from profile_summary import summarise

        out.with_suffix(".summary.txt").write_text(summarise(out, 12) + "\n")
        print(f"py-spy profile: {out} (+ .summary.txt)", flush=True)
    else:
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}", flush=True)


def gpu_processes() -> str:
    """``nvidia-smi``'s compute processes as 'pid: MiB' pairs (or why there are none)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"n/a ({exc})"
    return "; ".join(line.replace(", ", ": ") for line in out.splitlines() if line.strip())


def engine_figures(server: ServerProcess, calls_before: tuple[float, float], data_dir: Path,
                   source: str, since: int, elapsed: float) -> dict[str, Any]:
    """Where a served load's time went at the engine: calls per second and how long the server
    waited on each (``/metrics``), against how long the model itself ran per batch (each
    generation's ``run_ms``): the difference is the host's packing, sending and queueing."""
    seconds, calls = (after - before for after, before in zip(engine_calls(server), calls_before,
                                                                strict=True))
    figures = engine_provenance(data_dir, source, since)
    calls_per_s = calls / elapsed if elapsed else 0.0
    return {"calls_per_s": calls_per_s, "call_ms": seconds / calls * 1000 if calls else 0.0,
            **figures, "run_busy_pct": figures["run_ms"] * calls_per_s / 10}


def engine_calls(server: ServerProcess) -> tuple[float, float]:
    """(seconds, calls) of the served model's engine calls so far, from ``/metrics``."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {}
    for name in ("sum", "count"):
        match = re.search(rf'^imagehub_engine_call_seconds_{name}{{model="bench"}} (\S+)$', text,
                          re.MULTILINE)
        values[name] = float(match.group(1)) if match else 0.0
    return values["sum"], values["count"]


def engine_provenance(data_dir: Path, source: str, since: int) -> dict[str, Any]:
    """Of the generations of ``source`` (sync, queue) that succeeded from ``since`` (epoch
    seconds) on: images per engine call (mean over the images) and model run (ms); and the
    share of the batch slots the model ran that were padding (a call of 23 images padded up to
    a bucket of 32 runs 9 copies for nothing)."""
    import sqlite3

    with sqlite3.connect(data_dir / "imagehub.db") as db:
        rows = db.execute("SELECT provenance FROM generations WHERE status='succeeded' "
                          "AND source=? AND completed_at>=?", (source, since)).fetchall()
    engines = [json.loads(p).get("engine", {}) for (p,) in rows]
    sizes = [e["batch_size"] for e in engines if e.get("batch_size")]
    runs = [e["run_ms"] for e in engines if e.get("run_ms")]
    # each generation (one image each here) carries 1/batch of its call's padding
    padding = sum((e.get("padded_to", e["batch_size"]) - e["batch_size"]) / e["batch_size"]
                  for e in engines if e.get("batch_size"))
    return {"batch": round(statistics.fmean(sizes)) if sizes else None,
            "run_ms": statistics.fmean(runs) if runs else 0.0,
            "padded_pct": 100 * padding / (len(sizes) + padding) if sizes else 0.0}


async def _warm_up(server: ServerProcess, work: Workload, clients: int) -> None:
    async with _client(server, clients) as client:
        (await client.post("/api/ai/images/generate", json=work.api_body())).raise_for_status()
        bodies = [work.api_body() | {"seed": i} for i in range(clients)]
        for _ in range(2):  # each batch size the load will see, roughly, once
            answers = await asyncio.gather(*(client.post("/api/ai/images/generate", json=b)
                                             for b in bodies))
            for answer in answers:
                answer.raise_for_status()


def _client(server: ServerProcess, clients: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=600,
                             headers={"Authorization": f"Bearer {server.key}"},
                             limits=httpx.Limits(max_connections=clients + 8,
                                                 max_keepalive_connections=clients + 8))


async def _load(server: ServerProcess, work: Workload, clients: int, seconds: float,
                mode: str) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``; throughput over first start → last end."""
    latencies: list[float] = []
    errors = 0
    async with _client(server, clients) as client:
        events = _Completions(client) if mode == "queue" else None
        if events is not None:
            await events.start()
        started = time.perf_counter()
        deadline = started + seconds
        seeds = iter(range(10**9))

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                body = work.api_body() | {"seed": next(seeds)}
                t = time.perf_counter()
                ok = await (_sync_one(client, body) if events is None
                            else events.run_one(body))
                if ok:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        if events is not None:
            await events.stop()
    return {"images_per_s": len(latencies) / elapsed, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "errors": errors, "completed": len(latencies),
            "elapsed": elapsed}


async def _sync_one(client: httpx.AsyncClient, body: dict[str, Any]) -> bool:
    answer = await client.post("/api/ai/images/generate", json=body)
    return answer.status_code == 200


class _Completions:
    """One ``/api/events`` stream; queued jobs wait on their completed event."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._done: dict[str, bool] = {}
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), 30)

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, httpx.HTTPError):
            pass

    async def run_one(self, body: dict[str, Any]) -> bool:
        answer = await self._client.post("/api/ai/queue", json=body)
        if answer.status_code != 200:
            return False
        generation_id = answer.json()["generations"][0]["generation_id"]
        if generation_id in self._done:
            return self._done.pop(generation_id)
        future = asyncio.get_running_loop().create_future()
        self._waiting[generation_id] = future
        try:
            return await asyncio.wait_for(future, JOB_TIMEOUT_S)
        except TimeoutError:
            return False

    async def _read(self) -> None:
        async with self._client.stream("GET", "/api/events", timeout=None) as stream:
            self._ready.set()
            name = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "media_generation_completed":
                    data = json.loads(line[6:])
                    self._complete(data["generation_id"], data.get("status") == "succeeded")

    def _complete(self, generation_id: str, ok: bool) -> None:
        future = self._waiting.pop(generation_id, None)
        if future is None:
            self._done[generation_id] = ok
        elif not future.done():
            future.set_result(ok)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _buckets_label(options: dict[str, Any]) -> list[str]:
    """The batch sizes a compiled model's calls are padded up to, as the label shows them."""
    buckets = options.get("batch_buckets") or options.get("warmup_batches")
    if not buckets or options.get("compile", "off") == "off":
        return []
    return ["buckets=" + "/".join(str(b) for b in sorted(buckets))]


def print_table(title: str, rows: list[Row]) -> None:
    base, best = rows[0].images_per_s, rows[1].images_per_s if len(rows) > 1 else None
    print(f"\n{title}")
    header = (f"{'configuration':<62} {'images/s':>9} {'p50 s':>8} {'p99 s':>8} {'GPU %':>6} "
              f"{'batch':>6} {'pad %':>6} {'x seq':>7} {'x best':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        util = f"{row.gpu_util_pct:.0f}" if row.gpu_util_pct is not None else "n/a"
        vs_best = f"{row.images_per_s / best:.2f}" if best else "-"
        errors = f"  ({row.errors} errors)" if row.errors else ""
        batch = str(row.batch) if row.batch else "-"
        padded = f"{row.padded_pct:.0f}" if row.padded_pct is not None else "-"
        print(f"{row.config:<62} {row.images_per_s:>9.2f} {row.p50_s:>8.3f} {row.p99_s:>8.3f} "
              f"{util:>6} {batch:>6} {padded:>6} {row.images_per_s / base:>7.2f} {vs_best:>7}"
              f"{errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a diffusers folder (default: random full-size weights)")
    parser.add_argument("--families", default="sd-turbo",
                        help="sd-turbo, sdxl and/or flux-schnell (on CUDA)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=0.0)
    parser.add_argument("--resolution", default="512")
    parser.add_argument("--batches", default=None, help="plain batch sizes to try, e.g. 8,16,32,64")
    parser.add_argument("--runs", type=int, default=None, help="timed batch-1 renders")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=None, help="per served mode")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="served batch cap (default: half the clients, so one batch runs "
                             "while the last one's images are encoded and sent)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--encode-workers", type=int, default=8)
    parser.add_argument("--served", nargs="*", default=["{}"],
                        help='served configurations: engine options of the card, one JSON object '
                             'each, e.g. \'{}\' \'{"channels_last": true, "fuse_qkv": true}\'; '
                             '"max_batch" in one overrides --max-batch for it, '
                             '"worker_concurrency" --worker-concurrency, and "handoff" sets '
                             'the server\'s ENGINE_HANDOFF; "tiny_vae": "TAESD" is a random-weight '
                             'TAESD')
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="skip the served configurations that start after this many seconds")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--py-spy", help="record py-spy --gil profiles of each served load here "
                                         "(when py-spy is installed)")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = device == "cuda"
    batches = [int(b) for b in (args.batches or ("8,16,32,64" if gpu else "4,8")).split(",")]
    runs = args.runs or (40 if gpu else 8)
    seconds = args.seconds or (20.0 if gpu else 15.0)
    args.seconds = seconds
    print(f"device: {device_name(device)}; torch {torch.__version__}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="imagehub-gpu-bench-"))
    results: dict[str, Any] = {"device": device_name(device), "workloads": {}}
    started = time.monotonic()
    for work in build_workloads(args, device, root):
        plain = bench_plain(work, device, batches, runs)
        max_batch = args.max_batch or max(1, min(max(batches), args.clients // 2))
        served: list[Row] = []
        for options in map(json.loads, args.served):
            if options.get("tiny_vae") == "TAESD":
                options["tiny_vae"] = str(random_taesd(root, work))
            if args.deadline_s and time.monotonic() - started > args.deadline_s:
                print(f"skipped served {options}: past --deadline-s", flush=True)
                continue
            try:
                served += bench_served(work, device, args, root, max_batch, options)
            except Exception as exc:  # noqa: BLE001 - report it and go on to the next one
                print(f"served {options} failed: {type(exc).__name__}: {exc}", flush=True)
            # the table so far, so a run stopped by a time limit still reports what it measured
            print_table(f"{work.name} on {device_name(device)} (served: wait "
                        f"{args.batch_wait_ms} ms, {args.worker_concurrency} workers, or two "
                        "per copy with replicas)",
                        plain + served)
            results["workloads"][work.name] = [asdict(r) for r in plain + served]
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
