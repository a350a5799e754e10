"""Where one served engine call's time goes on its device: each phase of the pipeline, the GPU's
busy share, and the host's own work, in one run.

    python bench/engine_breakdown.py [--batch 32] [--runs 5] [--trace DIR]

The H100 runs of 2026-11-28 served a compiled SD-Turbo at about 120 images/s with the GPU busy
only 50-60% of the time, and a model run of about 160 ms per batch of 28 holding its process's
GIL for only about 28 ms of it. This says where the rest goes. It loads the model as the served
bench does (``DiffusersEngine``, regional compile with CUDA graphs, channels-last, a random-weight
TAESD, warmed up at ``--batch``; in this process, so the profiler sees it) and times
``generate_batch`` three ways:

1. **as served:** calls one after another, each call's wall time (no extra synchronisation);
2. **phase by phase:** the device synchronised around each phase (prompt encoding and its text
   encoder, timesteps, latents, each denoiser call, scheduler steps, the decode, the 8-bit pixels
   copied to the host), so each phase's time is its own; what no phase covers is the pipeline's
   own Python between them;
3. **profiled:** ``torch.profiler`` over ``--runs`` calls: the GPU's kernel time against the
   wall time, and the host operations that took the most time (with ``--trace DIR``, the
   Chrome trace too, gzipped).

On a CPU the tiny test pipeline stands in (512², 2 steps, eager): the script runs, the numbers
say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imagehub.engines.base import EngineRequest, no_progress


class PhaseClock:
    """Wall time per named phase, the device synchronised on entry and exit when ``sync``."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.sync = False
        self.times: dict[str, list[float]] = defaultdict(list)
        self.names: list[str] = []  # in the order the phases were wrapped

    def _synchronize(self) -> None:
        if self.sync and self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            if self.sync:
                self.times[name].append(time.perf_counter() - started)

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """``owner.attribute`` (a method) timed as ``name``, on this instance only."""
        inner: Callable[..., Any] = getattr(owner, attribute)
        self.names.append(name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return inner(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(engine: Any, clock: PhaseClock) -> None:
    """Time the loaded pipeline's phases (instance attributes only; the engine is otherwise as
    served)."""
    from imagehub.engines.diffusers import engine as engine_module

    pipe = engine.pipeline
    clock.wrap(pipe, "encode_prompt", "prompt (tokenizer + text encoder)")
    clock.wrap(pipe.text_encoder, "forward", "  of which the text encoder")
    clock.wrap(pipe.scheduler, "set_timesteps", "timesteps")
    clock.wrap(pipe, "prepare_latents", "latents (seeded noise)")
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    clock.wrap(denoiser, "forward", "denoiser")
    clock.wrap(pipe.scheduler, "step", "scheduler step")
    clock.wrap(pipe.vae, "decode", "decode")
    to_uint8 = engine_module._to_uint8

    def timed_to_uint8(images: Any) -> Any:
        with clock.phase("8-bit pixels to the host"):
            return to_uint8(images)

    clock.names.append("8-bit pixels to the host")
    engine_module._to_uint8 = timed_to_uint8


def build(device: str, root: Path, batch: int) -> tuple[Any, int, int]:
    """The engine as served, loaded and warmed up at ``batch``; its steps and side."""
    import torch
    from diffusers import AutoencoderTiny

    from imagehub.engines.diffusers import DiffusersEngine, dummy

    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(root / "taesd")  # TAESD's own architecture, random weights
    options: dict[str, Any] = {"tiny_vae": str(root / "taesd"), "warmup_batches": [1, batch],
                               "process": False}
    if device == "cuda":
        folder = dummy.build_full_size("sd-turbo", root / "sd-turbo", dtype="bf16", device="cuda")
        options.update(compile="regional", cuda_graphs=True, channels_last=True)
        steps = 1
    else:
        folder = dummy.build_tiny_sd(root / "tiny-sd", sample_size=64)
        steps = 2
    engine = DiffusersEngine(str(folder), device=device, **options)
    started = time.perf_counter()
    engine.load()
    print(f"loaded and warmed up in {time.perf_counter() - started:.1f} s", flush=True)
    return engine, steps, 512


def calls(engine: Any, requests: list[EngineRequest], runs: int) -> list[float]:
    """``runs`` calls one after another: each one's wall seconds."""
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        for outcome in engine.generate_batch(requests, [no_progress] * len(requests)):
            if isinstance(outcome, Exception):
                raise outcome
        walls.append(time.perf_counter() - started)
    return walls


def profiled(engine: Any, requests: list[EngineRequest], runs: int, device: str,
             trace: Path | None) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])

    def run() -> tuple[Any, float]:  # on the engine's thread: the profiler sees its own thread
        with profile(activities=activities) as prof:
            wall = sum(calls(engine, requests, runs))
        return prof, wall

    prof, wall = engine.thread.call(run)
    events = prof.key_averages()
    print(f"\nprofiled: {runs} calls, {wall / runs * 1000:.1f} ms each", flush=True)
    if device == "cuda":
        kernels = sum(e.self_device_time_total for e in events) / 1e6  # µs → s
        print(f"GPU kernel time {kernels / runs * 1000:.1f} ms a call: "
              f"busy {kernels / wall:.0%} of the calls' wall time "
              "(kernels on parallel streams counted each)")
        torch.cuda.synchronize()
    print("host operations by their own CPU time (top 15):")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))
    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        raw = trace / "engine_trace.json"
        prof.export_chrome_trace(str(raw))
        with raw.open("rb") as source, gzip.open(f"{raw}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
        raw.unlink()
        print(f"trace: {raw}.gz")


def report(clock: PhaseClock, served: list[float], synced: list[float], batch: int) -> None:
    """The table: each phase's mean ms a call, its share of the synchronised call."""
    call_ms = statistics.mean(synced) * 1000
    print(f"\nas served: {statistics.mean(served) * 1000:.1f} ms a call of {batch} "
          f"(p50 {statistics.median(served) * 1000:.1f}), {batch / statistics.mean(served):.1f} "
          f"images/s; synchronised phase by phase: {call_ms:.1f} ms a call")
    print(f"{'phase':<40} {'ms a call':>10} {'calls':>6} {'share':>7}")
    covered = 0.0
    runs = len(synced)
    for name in clock.names:
        times = clock.times.get(name, [])
        per_call = sum(times) / runs * 1000
        if not name.startswith(" "):
            covered += per_call
        print(f"{name:<40} {per_call:>10.1f} {len(times) // runs:>6} {per_call / call_ms:>7.0%}")
    rest = call_ms - covered
    print(f"{'the rest (pipeline Python, engine)':<40} {rest:>10.1f} {'':>6} {rest / call_ms:>7.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trace", type=Path, help="write the profiler's Chrome trace here")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="imagehub-breakdown-") as tmp:
        engine, steps, side = build(device, Path(tmp), args.batch)
        requests = [EngineRequest(prompt=f"a photo of a cat on a red chair, take {n}", width=side,
                                  height=side, seed=n, num_inference_steps=steps)
                    for n in range(args.batch)]
        served = calls(engine, requests, args.runs)
        clock = PhaseClock(device)
        instrument(engine, clock)
        clock.sync = True
        synced = calls(engine, requests, args.runs)
        clock.sync = False
        report(clock, served, synced, args.batch)
        try:
            profiled(engine, requests, args.runs, device, args.trace)
        except Exception as exc:  # noqa: BLE001 - the tables above stand on their own
            print(f"profiling failed: {type(exc).__name__}: {exc}", flush=True)
        engine.unload()


if __name__ == "__main__":
    main()
