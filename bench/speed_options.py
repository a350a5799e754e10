"""Each speed option of a diffusers card against eager, in one run on one device.

    python bench/speed_options.py [--batch 8] [--runs 5] [--only channels_last,compile]

The engine itself (``DiffusersEngine.generate_batch``, no HTTP), so the numbers are the options'
effect alone. On CUDA: the full-size SD-Turbo architecture with random weights, 512², 1 step,
bf16. On a CPU: the tiny test pipeline, 512² native, 2 steps (the ratios say little about a GPU;
the script is the same). For each configuration: load + warm-up seconds, images/s at
``--batch``, the ratio to eager, and the largest pixel difference from eager (0-255; exact
options stay within a few levels, a tiny VAE does not).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from imagehub.engines.base import EngineRequest, no_progress

CONFIGS: dict[str, dict[str, Any]] = {
    "eager": {},
    "channels_last": {"channels_last": True},
    "fuse_qkv": {"fuse_qkv": True},
    "attention=eager": {"attention": "eager"},
    "compile": {"compile": "regional"},
    "compile+cuda_graphs": {"compile": "regional", "cuda_graphs": True},
    "compile=full": {"compile": "full"},
    "tiny_vae": {"tiny_vae": "TAESD"},
    "all": {"channels_last": True, "fuse_qkv": True, "compile": "regional", "cuda_graphs": True,
            "tiny_vae": "TAESD"},
}
CUDA_ONLY = ("compile+cuda_graphs", "compile=full", "all")


def build_models(device: str, root: Path) -> tuple[Path, Path, int, int]:
    """The pipeline folder, a random TAESD folder of the real size, steps, and side."""
    import torch
    from diffusers import AutoencoderTiny

    from imagehub.engines.diffusers import dummy

    if device == "cuda":
        folder = dummy.build_full_size("sd-turbo", root / "sd-turbo", dtype="bf16", device="cuda")
        steps = 1
    else:
        folder = dummy.build_tiny_sd(root / "tiny-sd", sample_size=64)
        steps = 2
    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(root / "taesd")  # TAESD's own architecture, random weights
    return folder, root / "taesd", steps, 512


def measure(folder: Path, device: str, options: dict[str, Any], batch: int, runs: int,
            steps: int, side: int) -> dict[str, Any]:
    import torch

    from imagehub.engines.diffusers import DiffusersEngine

    engine = DiffusersEngine(str(folder), device=device, warmup_batches=[batch], **options)
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started
    requests = [EngineRequest(prompt="a photo of a cat on a red chair", width=side, height=side,
                              seed=n, num_inference_steps=steps) for n in range(batch)]

    def render() -> list[Any]:
        outcomes = engine.generate_batch(requests, [no_progress] * batch)
        if device == "cuda":
            torch.cuda.synchronize()
        return outcomes

    first = render()
    started = time.perf_counter()
    for _ in range(runs):
        render()
    elapsed = time.perf_counter() - started
    pixels = np.stack([np.asarray(o.images[0]) for o in first]).astype(np.int16)
    engine.unload()  # its memory back before the next configuration loads
    gc.collect()
    return {"load_s": load_s, "images_per_s": batch * runs / elapsed, "pixels": pixels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="comma-separated configurations (eager is always run)")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    root = Path(tempfile.mkdtemp(prefix="imagehub-speed-"))
    folder, taesd, steps, side = build_models(device, root)
    wanted = ["eager"] + [c for c in (args.only.split(",") if args.only else CONFIGS) if c != "eager"]
    rows: dict[str, dict[str, Any]] = {}
    for config in wanted:
        if device != "cuda" and config in CUDA_ONLY:
            continue
        options = {k: (str(taesd) if v == "TAESD" else v) for k, v in CONFIGS[config].items()}
        try:
            rows[config] = measure(folder, device, options, args.batch, args.runs, steps, side)
        except Exception as exc:  # noqa: BLE001 - report it and go on
            print(f"{config}: failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"{config}: {rows[config]['images_per_s']:.2f} images/s", flush=True)

    base = rows["eager"]
    print(f"\nspeed options on {name}: {side}², {steps} step(s), batch {args.batch}, {args.runs} runs")
    print(f"{'configuration':<22} {'load+warm-up s':>15} {'images/s':>9} {'x eager':>8} {'max px diff':>12}")
    for config, row in rows.items():
        diff = int(np.abs(row["pixels"] - base["pixels"]).max())
        print(f"{config:<22} {row['load_s']:>15.1f} {row['images_per_s']:>9.2f} "
              f"{row['images_per_s'] / base['images_per_s']:>8.2f} {diff:>12}")


if __name__ == "__main__":
    main()
