"""A stand-in engine for ``EngineProcess`` tests, imported by the child process by name."""

from __future__ import annotations

import os
import time

from imagehub.engines.base import StepCallback


class Stepper:
    """``generate_batch(steps, on_steps)``: ``steps`` steps, each reported to every live request
    (one that raised leaves, as in ``DiffusersEngine``); each outcome is the number of steps the
    child reported to that request."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds
        self.last: tuple[int, list[int]] = (0, [])
        """Of the last batch: steps run, and steps reported to each request, as the child saw."""

    def last_batch(self) -> tuple[int, list[int]]:
        return self.last

    def pid(self) -> int:
        return os.getpid()

    def generate_batch(self, steps: int, on_steps: list[StepCallback]) -> list[object]:
        reported = [0] * len(on_steps)
        left: dict[int, Exception] = {}
        for step in range(1, steps + 1):
            self.last = (step, reported)
            time.sleep(self.step_seconds)
            for n, on_step in enumerate(on_steps):
                if n in left:
                    continue
                try:
                    on_step(step, steps)
                    reported[n] += 1
                except Exception as exc:  # noqa: BLE001 - that request left
                    left[n] = exc
            if len(left) == len(on_steps):
                break
        return [left.get(n, reported[n]) for n in range(len(on_steps))]

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def unpicklable(self) -> object:
        return lambda: None

    def images(self, count: int) -> list[object]:
        """``count`` distinct 64x48 RGB images (a gradient shifted by the index)."""
        from PIL import Image

        return [Image.frombytes("RGB", (64, 48), bytes((i + n) % 256 for i in range(64 * 48 * 3)))
                for n in range(count)]
