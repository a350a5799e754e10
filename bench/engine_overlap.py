"""How much of a model's device time the engine boundary keeps busy, one call at a time against
the next call sent at the last step (``GenerationService``'s ``_EngineTurn``), in one run.

    python bench/engine_overlap.py [--seconds 10] [--batch 32] [--denoise-ms 80] [--decode-ms 40]
                                   [--python-ms 20]

The model is a stand-in hosted in its own process by ``EngineProcess``, as a GPU model is: its
device work is a wait that lets go of the GIL, as waiting on a GPU does (``--denoise-ms``, then
the last step is reported, then ``--decode-ms``), with ``--python-ms`` of the pipeline's own
Python (which holds the GIL) spread between those waits, run one batch at a time on its engine
thread; then ``--batch`` PIL images of ``--side``² are made from its 8-bit pixels. The defaults
are what the H100 run of 2026-11-27 implies for a compiled SD-Turbo batch of 32 with TAESD (about
120 ms of GPU work per batch, the GPU 32-36% busy when served one call at a time, and about 20 ms
of the engine thread's GIL time per batch in the py-spy profile).

Five modes: one call at a time; the next call sent at the last step with the images made on the
engine's thread (as until 35dcf47); made on the call's thread in the model's process (as at
334079e); the pixels sent across, the images made in the server (as since 0cb95cd); and the same
with the last step reported once the decode is done and the pixels are on the host (as since
2026-11-28). The batches here are always full, so this shows what the later hand-off costs in
overlap, not what it gains in batch size (which needs real clients: ``gpu_throughput.py``). Prints
images/s, how busy the stand-in's device was, and each mode's ratio to the first. Then the cost
of getting a batch from pixels in the child to images in the parent: a fresh shared-memory block
per image (as until 2026-11-27), a fresh one per reply, images in a reused one, and pixels in a
reused one (as now); and of making its PIL images from strided pixels (as until 2026-11-27)
against contiguous ones.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from PIL import Image

from imagehub.engines.process import EngineProcess, ImagePixels, _Blocks, _pack, _unpack
from imagehub.engines.thread import EngineThread
from imagehub.services.generation import _EngineTurn


class DeviceStandIn:
    """``generate_batch(count, where, on_steps)``: device waits around the last step, with the
    engine thread's own Python between them, then ``count`` images (one outcome, a list of one
    image, per callback): PIL images made on the engine's thread (``where="engine"``, as
    ``DiffusersEngine`` until 35dcf47), on the call's thread in the model's process
    (``"caller"``, as at 334079e), or 8-bit pixel arrays that the server makes into images
    (``"server"``, as now)."""

    def __init__(self, denoise_ms: float, decode_ms: float, side: int,
                 python_ms: float = 0.0) -> None:
        self.denoise_s, self.decode_s = denoise_ms / 1000, decode_ms / 1000
        self.python_s = python_ms / 1000
        self.side = side
        self.thread = EngineThread("stand-in")  # device work one batch at a time, as an engine's

    def generate_batch(self, count: int, where: str, at_host: bool,
                       on_steps: list[Any]) -> list[list[Any]]:
        if where == "engine":
            return self.thread.call(lambda: self._images(self._device(count, at_host, on_steps)))
        pixels = self.thread.call(self._device, count, at_host, on_steps)
        if where == "caller":
            return self._images(pixels)
        return [[ImagePixels(array)] for array in pixels]  # as DiffusersEngine.generate_pixels

    def _device(self, count: int, at_host: bool, on_steps: list[Any]) -> np.ndarray:
        """The last step reported once the pixels are on the host (``at_host``, as
        ``DiffusersEngine`` since 2026-11-28) or when the denoising is done (as until then)."""
        self._launch(self.denoise_s)  # the denoising steps on the device
        if not at_host:
            for on_step in on_steps:
                on_step(1, 1)
        self._launch(self.decode_s)  # the decode, and the 8-bit pixels copied to the host
        if at_host:
            for on_step in on_steps:
                on_step(1, 1)
        return np.full((count, self.side, self.side, 3), 7, dtype=np.uint8)

    def _launch(self, device_s: float, slices: int = 20) -> None:
        """``device_s`` of waiting on the device in ``slices``, each after its share of the
        engine thread's Python (half of ``python_s`` per phase), which needs the GIL."""
        for _ in range(slices):
            until = time.perf_counter() + self.python_s / 2 / slices
            while time.perf_counter() < until:  # the pipeline's Python: holds the GIL
                pass
            time.sleep(device_s / slices)

    @staticmethod
    def _images(pixels: np.ndarray) -> list[list[Image.Image]]:
        return [[Image.fromarray(array)] for array in pixels]


def serve(process: EngineProcess, batch: int, seconds: float, overlap: bool,
          where: str = "server", at_host: bool = True) -> int:
    """Batches of ``batch`` for ``seconds``: from one thread one call at a time, or from two
    threads that take turns at a lock given up at the last step (the service's way)."""
    lock, done = threading.Lock(), [0]
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        while time.perf_counter() < deadline:
            with _EngineTurn(lock) as turn:
                on_steps = [lambda step, total: None] * batch
                if overlap:
                    on_steps = turn.until_last_step(on_steps)
                outcomes = process.call("generate_batch", batch, where, at_host,
                                        on_steps=on_steps)
            assert len(outcomes) == batch and isinstance(outcomes[0][0], Image.Image)
            done[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(2 if overlap else 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0]


def old_to_shared_memory(image: Image.Image) -> tuple[str, str, tuple[int, int], int]:
    """Until 2026-11-27: a block per image."""
    pixels = image.tobytes()
    block = SharedMemory(create=True, size=max(1, len(pixels)))
    block.buf[:len(pixels)] = pixels
    block.close()
    return block.name, image.mode, image.size, len(pixels)


def old_from_shared_memory(name: str, mode: str, size: tuple[int, int], length: int) -> Image.Image:
    block = SharedMemory(name=name)
    try:
        return Image.frombytes(mode, size, bytes(block.buf[:length]))
    finally:
        block.close()
        block.unlink()


def transfer_costs(batch: int, side: int, runs: int = 10) -> None:
    """From a batch's contiguous 8-bit pixels in the model's process to its PIL images in the
    server's, each way the images have crossed: the child's time and the parent's."""
    pixels = np.stack([np.full((side, side, 3), n % 256, dtype=np.uint8) for n in range(batch)])
    reused, reused_arrays = _Blocks(), _Blocks()

    def images() -> list[Image.Image]:
        return [Image.fromarray(array) for array in pixels]

    def fresh_reply() -> tuple[Any, ...]:
        blocks = _Blocks()  # a new block each time, unlinked once read
        return (*_pack(("ok", images()), blocks), blocks)

    def read_fresh(sent: tuple[Any, ...]) -> None:
        *packed, blocks = sent
        _unpack(*packed)
        blocks.close()

    def read_reused(sent: tuple[str, Any, Any]) -> None:
        _unpack(*sent)
        reused.give_back(sent[0])

    def read_arrays(sent: tuple[str, Any, Any]) -> None:
        _unpack(*sent)  # PIL images, made from the block
        reused_arrays.give_back(sent[0])

    rows = []
    for label, send, receive in (
            ("a fresh block per image", lambda: [old_to_shared_memory(im) for im in images()],
             lambda sent: [old_from_shared_memory(*ref) for ref in sent]),
            ("a fresh block per reply", fresh_reply, read_fresh),
            ("images, a reused block", lambda: _pack(("ok", images()), reused), read_reused),
            ("pixels, a reused block",
             lambda: _pack(("ok", [ImagePixels(array) for array in pixels]), reused_arrays),
             read_arrays)):
        child_ms, parent_ms = [], []
        for _ in range(runs):  # each send is received (and its blocks freed) before the next
            began = time.perf_counter()
            sent = send()
            child_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            receive(sent)
            parent_ms.append((time.perf_counter() - began) * 1000)
        rows.append((label, statistics.median(child_ms), statistics.median(parent_ms)))
    reused.close()
    reused_arrays.close()
    print(f"\n{batch} {side}² RGB images across, from 8-bit pixels in the child to PIL images in "
          f"the parent (median of {runs}; the parent's time includes freeing a fresh block):")
    print(f"{'':<24} {'child ms':>9} {'parent ms':>10}")
    for label, child, parent in rows:
        print(f"{label:<24} {child:>9.1f} {parent:>10.1f}")
    print(f"pixels against images in a reused block: child {rows[3][1] / rows[2][1]:.2f}x the "
          f"time, parent {rows[3][2] / rows[2][2]:.2f}x")


def pil_costs(batch: int, side: int, runs: int = 10) -> None:
    """``DiffusersEngine``'s PIL images from a batch's 8-bit pixels, as the host copy of the
    device's N, H, W, C view left them until 2026-11-27 (strided) and made contiguous first."""
    import torch

    nchw = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8)
    strided, contiguous = nchw.permute(0, 2, 3, 1), nchw.permute(0, 2, 3, 1).contiguous()
    print(f"\nPIL images from a batch of {batch} {side}² (median of {runs}):")
    for label, pixels in (("strided", strided), ("contiguous", contiguous)):
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            [Image.fromarray(array) for array in pixels.numpy()]
            times.append((time.perf_counter() - began) * 1000)
        print(f"{label:<22} {statistics.median(times):>9.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--denoise-ms", type=float, default=80.0)
    parser.add_argument("--decode-ms", type=float, default=40.0)
    parser.add_argument("--python-ms", type=float, default=20.0,
                        help="the engine thread's own Python per batch (holds the GIL)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the modes")
    args = parser.parse_args()
    device_s = (args.denoise_ms + args.decode_ms) / 1000

    process = EngineProcess("stand-in", "engine_overlap:DeviceStandIn",
                            (args.denoise_ms, args.decode_ms, args.side, args.python_ms))
    modes = {  # label: (next call sent at the last step, where the images are made, and
        #            whether the last step is reported with the pixels on the host)
        "one call at a time": (False, "engine", False),
        "hand-off, images on the engine's thread": (True, "engine", False),
        "hand-off, images on the call's thread": (True, "caller", False),
        "hand-off, pixels across, images in server": (True, "server", False),
        "the same, hand-off with pixels on the host": (True, "server", True),
    }
    try:
        serve(process, args.batch, 1.0, overlap=True)  # warm: the child's imports, first blocks
        results: dict[str, list[float]] = {label: [] for label in modes}
        for _ in range(args.rounds):
            for label, (overlap, where, at_host) in modes.items():
                began = time.perf_counter()
                batches = serve(process, args.batch, args.seconds, overlap, where, at_host)
                results[label].append(batches / (time.perf_counter() - began))
    finally:
        process.stop()
    print(f"stand-in model: {args.denoise_ms:.0f} ms denoise + {args.decode_ms:.0f} ms decode per "
          f"batch of {args.batch} {args.side}² images with {args.python_ms:.0f} ms of Python on its "
          f"engine thread, in its own process; {args.rounds} rounds of {args.seconds:.0f} s each")
    print(f"{'':<42} {'images/s':>9} {'device busy':>12} {'x first':>8}")
    first = statistics.median(next(iter(results.values())))
    for label, rates in results.items():
        rate = statistics.median(rates)
        print(f"{label:<42} {rate * args.batch:>9.1f} {rate * device_s:>11.0%} "
              f"{rate / first:>8.2f}")
    print(f"ceilings: device-bound {args.batch / device_s:.1f} images/s; the engine thread's "
          f"device and Python in series {args.batch / (device_s + args.python_ms / 1000):.1f}")
    transfer_costs(args.batch, args.side)
    pil_costs(args.batch, args.side)


if __name__ == "__main__":
    main()
