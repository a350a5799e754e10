"""What a busy server thread costs a model's calls: the engine in the server's process (its own
thread) against the engine in a process of its own (``process = true``), on the same engine.

    python bench/engine_isolation.py [--calls 20] [--duty 0.25,0.5,1.0] [--device cuda]

torch lets go of the GIL around every op it dispatches and must take it back after; a thread
running Python meanwhile (the HTTP event loop, JSON, bookkeeping) holds it for up to the switch
interval (5 ms). A model whose calls are many small ops (every GPU model: each op is a kernel
launch) then waits once per op: a convoy. Stand-in here: the tiny SD at its native 64², one torch
thread, batch 1, so its calls are small-op bound as a GPU model's launches are. The busy thread
runs ``json.dumps`` for ``duty`` of every 4 ms (1.0: all the time), like a loaded event loop. With
one torch thread and at most one busy thread, two cores hold both without competing for a core,
so what differs is the GIL alone.

On ``--device cuda`` the engine is full-size SD-Turbo (random weights, bf16) at 512², 1 step,
batch 1: a real GPU model's launches.

Reports ms per engine call (median) and the ratio to the same placement with nothing busy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

from imagehub.engines.base import EngineRequest, no_progress

PERIOD_S = 0.004


class Busy:
    """A thread holding the GIL in pure Python for ``duty`` of every ``PERIOD_S``."""

    def __init__(self, duty: float) -> None:
        self.duty = duty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        if self.duty > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        payload = {"generation_id": "x" * 36, "status": "succeeded", "images": list(range(50))}
        while not self._stop.is_set():
            began = time.perf_counter()
            while time.perf_counter() - began < PERIOD_S * self.duty:
                json.dumps(payload)
            if self.duty < 1:
                time.sleep(PERIOD_S * (1 - self.duty))


def timed_calls(engine, calls: int, size: int, steps: int) -> float:  # type: ignore[no-untyped-def]
    """Median ms of ``calls`` single-image calls."""
    times = []
    for seed in range(calls):
        request = EngineRequest(prompt="a red cat", width=size, height=size, seed=seed,
                                num_inference_steps=steps)
        began = time.perf_counter()
        engine.generate(request, no_progress)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--duty", default="0.25,0.5,1.0", help="busy fractions to try")
    parser.add_argument("--device", default="cpu", help="cpu (tiny SD) or cuda (full-size SD-Turbo)")
    args = parser.parse_args()
    duties = [0.0] + [float(d) for d in args.duty.split(",")]

    import torch

    from imagehub.engines.diffusers import DiffusersEngine, dummy

    torch.set_num_threads(1)  # the child takes the same number
    root = Path(tempfile.mkdtemp(prefix="imagehub-isolation-"))
    if args.device == "cuda":
        folder = dummy.build_full_size("sd-turbo", root / "sd-turbo", dtype="bf16", device="cuda")
        size, steps, label = 512, 1, "full-size SD-Turbo 512², 1 step, bf16, batch 1"
    else:
        folder = dummy.build_tiny_sd(root / "tiny", sample_size=8)
        size, steps, label = 64, 2, "tiny SD 64², 2 steps, batch 1, 1 torch thread"
    rows: dict[str, list[float]] = {}
    for placement, process in (("server's process (thread)", False), ("own process", True)):
        engine = DiffusersEngine(str(folder), device=args.device, process=process)
        engine.load()
        timed_calls(engine, 3, size, steps)  # warm
        rows[placement] = []
        for duty in duties:
            with Busy(duty):
                rows[placement].append(timed_calls(engine, args.calls, size, steps))
            print(f"{placement}, busy {duty:.0%}: {rows[placement][-1]:.1f} ms/call", flush=True,
                  file=sys.stderr)
        engine.close()

    print(f"\nengine call ({label}) on {args.device} beside a thread running Python for the "
          f"given share of the time; ms per call, median of {args.calls}")
    header = "".join(f"{f'busy {d:.0%}':>16}" for d in duties)
    print(f"{'engine runs in':<28}{header}")
    for placement, values in rows.items():
        cells = "".join(f"{v:>8.1f} ({v / values[0]:4.1f}x)" for v in values)
        print(f"{placement:<28}{cells}")


if __name__ == "__main__":
    main()
