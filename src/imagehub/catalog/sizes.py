"""Output sizes from ``resolution`` + ``aspect_ratio`` (API.md section 6)."""

from __future__ import annotations

import math

ASPECT_RATIOS: list[str] = [
    "auto", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3",
    "4:5", "5:4", "21:9", "4:1", "1:4", "8:1", "1:8",
]
RESOLUTION_BASES: dict[str, int] = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}


def ratio_value(aspect_ratio: str) -> float:
    """``"16:9"`` -> 1.777...; ``auto`` is 1:1 (text-only requests)."""
    if aspect_ratio == "auto":
        return 1.0
    w, h = aspect_ratio.split(":")
    return int(w) / int(h)


def size_for_base(base: int, ratio: float, multiple: int = 16) -> tuple[int, int]:
    """width = m·round(base·√r / m), height = m·round(base / √r / m)."""
    root = math.sqrt(ratio)
    width = multiple * round(base * root / multiple)
    height = multiple * round(base / root / multiple)
    return max(width, multiple), max(height, multiple)


def output_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """The exact pixel size a request for ``resolution`` at ``aspect_ratio`` must return."""
    return size_for_base(RESOLUTION_BASES[resolution], ratio_value(aspect_ratio))


def nearest_ratio(width: int, height: int) -> str:
    """The listed ratio closest (in log space) to ``width``:``height``; used for ``auto`` edits."""
    target = math.log(width / height)
    listed = [r for r in ASPECT_RATIOS if r != "auto"]
    return min(listed, key=lambda r: abs(math.log(ratio_value(r)) - target))
