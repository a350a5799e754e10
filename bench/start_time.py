"""How long ``imagehub serve`` takes to answer with local diffusers model cards, with the cache of
what pipeline classes take (``IMAGEHUB_CACHE_DIR``) empty and then filled, against a server with
no local model in the same run.

    python bench/start_time.py [--runs 3]

Reading a pipeline class's ``__call__`` means importing diffusers and torch; the cache lets a
start list its models without that. Each start is ``imagehub serve`` in a new process until
``/healthz`` answers; ``models add`` is timed the same way (a refused ``--set``: it reads the
folder's layout, then stops).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagehub.engines.diffusers.dummy import build_tiny_sd
from imagehub.testing import ServerProcess, write_catalog


def start_seconds(data_dir: Path, env: dict[str, str]) -> float:
    server = ServerProcess(data_dir, env)
    began = time.perf_counter()
    server.start(timeout=300)
    took = time.perf_counter() - began
    server.stop()
    return took


def add_seconds(data_dir: Path, folder: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "imagehub", "models", "add", str(folder), "--set",
                    "colour=red"], env={**os.environ, **env, "IMAGEHUB_DATA_DIR": str(data_dir),
                                        "HF_HUB_OFFLINE": "1"},
                   capture_output=True, check=False, timeout=300)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imagehub-start-"))
    folder = build_tiny_sd(root / "tiny")
    cache = root / "cache"
    env = {"IMAGEHUB_CACHE_DIR": str(cache)}
    results: dict[str, list[float]] = {"no local model": [], "2 local cards, cache empty": [],
                                       "2 local cards, cache filled": [],
                                       "models add, cache empty": [],
                                       "models add, cache filled": []}
    for run in range(args.runs):
        plain = root / f"plain-{run}"
        plain.mkdir()
        results["no local model"].append(start_seconds(plain, env))
        cards = root / f"cards-{run}"
        write_catalog(cards, folder, **{"tiny-sd-slow": 40})
        shutil.rmtree(cache, ignore_errors=True)
        results["2 local cards, cache empty"].append(start_seconds(cards, env))
        results["2 local cards, cache filled"].append(start_seconds(cards, env))
        shutil.rmtree(cache, ignore_errors=True)
        results["models add, cache empty"].append(add_seconds(root / f"add-{run}", folder, env))
        results["models add, cache filled"].append(add_seconds(root / f"add-{run}", folder, env))
    base = statistics.median(results["no local model"])
    print(f"\nstart to /healthz, median of {args.runs} ({os.cpu_count()} cores)")
    print(f"{'':<32} {'seconds':>8} {'x no local model':>17}")
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:<32} {median:>8.2f} {median / base:>17.2f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
