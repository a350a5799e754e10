"""End-to-end speed of imagehub-tiny on CPU: text encoding, model, render, PNG.

    python bench/builtin_speed.py [--repeats 5] [--threads 1] [--compress-level 1]

Prints the median split per size (1K 1:1 and 4K 1:1 by default) and the total. Targets from
issue 3: 1K <= 1 s, 4K <= 4 s on 2 cores. On a busy machine, ``--threads 1`` is much faster than
torch's default of one thread per core: the prompt is a single short sequence, and OpenMP
threads that wait for each other on a shared CPU waste most of their time.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np

from imagehub.catalog.sizes import output_size
from imagehub.engines.builtin.engine import BuiltinEngine
from imagehub.engines.builtin.layout import layout_scene
from imagehub.engines.builtin.render import render
from imagehub.engines.builtin.sampler import sample_scene

PROMPTS = [
    ("three small blue stars in the top left corner on a background fading from navy at the "
     "top to white at the bottom"),
    "a crimson disc in the upper left corner",
    "a huge yellow heart above a small purple square on a pink background",
]
TARGETS = {"1K": 1.0, "4K": 4.0}


def one_run(engine: BuiltinEngine, prompt: str, width: int, height: int, seed: int,
            compress_level: int) -> dict[str, float]:
    t0 = time.perf_counter()
    states, mask = engine.encode([prompt])
    t1 = time.perf_counter()
    dists = engine.read(states, mask)[0]
    rng = np.random.default_rng(seed)
    layout = layout_scene(sample_scene(dists, rng), width, height, rng)
    t2 = time.perf_counter()
    image = render(layout)
    t3 = time.perf_counter()
    image.save(io.BytesIO(), format="PNG", compress_level=compress_level)
    t4 = time.perf_counter()
    return {"encode": t1 - t0, "model": t2 - t1, "render": t3 - t2, "png": t4 - t3, "total": t4 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default, one per core)")
    parser.add_argument("--sizes", default="1K,4K")
    parser.add_argument("--compress-level", type=int, default=6, help="PNG zlib level (Pillow default 6)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    engine = BuiltinEngine()
    start = time.perf_counter()
    engine.load()
    print(f"load (once per process): {time.perf_counter() - start:.2f}s")
    for resolution in args.sizes.split(","):
        width, height = output_size(resolution, "1:1")
        runs = [one_run(engine, PROMPTS[i % len(PROMPTS)], width, height, i, args.compress_level)
                for i in range(args.repeats + 1)][1:]  # first run warms up
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        worst = max(r["total"] for r in runs)
        split = "  ".join(f"{k} {v * 1000:6.0f} ms" for k, v in median.items() if k != "total")
        target = TARGETS.get(resolution)
        verdict = "" if target is None else ("ok" if median["total"] <= target else "SLOW")
        print(f"{resolution} {width}x{height}: {split}  | total {median['total'] * 1000:6.0f} ms "
              f"(worst {worst * 1000:.0f} ms) {verdict}")


if __name__ == "__main__":
    main()
