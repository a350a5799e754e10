"""Place a scene on a canvas: pixel centres and diameters for every object.

Layout is geometry only: it receives class indices already decided (by the learned head and the
seeded sampler) and finds places for them that respect the asked position or relation, keep
every object on the canvas and keep objects apart, so each one reads as itself.
"""

from __future__ import annotations

import numpy as np

from .world import SIZE_DIAMETER, Layout, ObjectSpec, PlacedObject, Scene, position_cell

MARGIN = 0.04
"""Free border, as a fraction of the short side."""
CELL_INSET = 0.12
"""How far inside its grid cell a group's centre stays, as a fraction of the cell."""
_ARRANGEMENTS: dict[int, list[tuple[int, int]]] = {
    1: [(1, 1)],
    2: [(2, 1), (1, 2)],
    3: [(3, 1), (1, 3)],
    4: [(4, 1), (1, 4), (2, 2)],
}
"""(columns, rows) a group of n objects can take."""


def layout_scene(scene: Scene, width: int, height: int, rng: np.random.Generator) -> Layout:
    """Pixel placement of ``scene`` on a ``width`` x ``height`` canvas."""
    out = Layout(width=width, height=height, background=scene.background)
    if scene.b is None or scene.relation == "none":
        out.objects = _place_group(scene.a, width, height, rng)
    else:
        out.objects = _place_pair(scene, width, height, rng)
    return out


def _place_group(
    spec: ObjectSpec, width: int, height: int, rng: np.random.Generator
) -> list[PlacedObject]:
    short = min(width, height)
    margin = MARGIN * short
    diameter = SIZE_DIAMETER[spec.size] * short * rng.uniform(0.92, 1.08)
    gap = rng.uniform(0.3, 0.7)
    if spec.position is None:
        region = (0.0, 0.0, float(width), float(height))
        inset = 0.0
    else:
        col, row = position_cell(spec.position)
        region = (col * width / 3, row * height / 3, (col + 1) * width / 3, (row + 1) * height / 3)
        inset = CELL_INSET
    choices = list(_ARRANGEMENTS[spec.count])
    rng.shuffle(choices)
    for _ in range(60):
        fits = []
        for cols, rows in choices:
            pitch = diameter * (1 + gap)
            gw, gh = (cols - 1) * pitch + diameter, (rows - 1) * pitch + diameter
            xs = _centre_range(region[0], region[2], inset, gw, width, margin)
            ys = _centre_range(region[1], region[3], inset, gh, height, margin)
            if xs and ys:
                fits.append((cols, rows, pitch, xs, ys))
        if fits:
            cols, rows, pitch, xs, ys = fits[0]
            cx, cy = rng.uniform(*xs), rng.uniform(*ys)
            return _grid(spec, cols, rows, pitch, diameter, cx, cy, rng)
        diameter *= 0.92
        gap = max(0.25, gap * 0.9)
    raise ValueError(f"cannot place {spec.count} objects on a {width}x{height} canvas")


def _centre_range(
    lo: float, hi: float, inset: float, extent: float, limit: float, margin: float
) -> tuple[float, float] | None:
    """Where a group's centre may go: inside [lo, hi] (inset) with the group on the canvas."""
    span = hi - lo
    a = max(lo + inset * span, extent / 2 + margin)
    b = min(hi - inset * span, limit - extent / 2 - margin)
    return (a, b) if a <= b else None


def _grid(
    spec: ObjectSpec, cols: int, rows: int, pitch: float, diameter: float,
    cx: float, cy: float, rng: np.random.Generator,
) -> list[PlacedObject]:
    placed = []
    jitter = 0.08 * diameter
    for index in range(spec.count):
        col, row = index % cols, index // cols
        x = cx + (col - (cols - 1) / 2) * pitch + rng.uniform(-jitter, jitter)
        y = cy + (row - (rows - 1) / 2) * pitch + rng.uniform(-jitter, jitter)
        placed.append(PlacedObject(spec.shape, spec.colour, x, y, diameter, role="a"))
    return placed


def _place_pair(scene: Scene, width: int, height: int, rng: np.random.Generator) -> list[PlacedObject]:
    assert scene.b is not None
    relation = scene.relation
    if relation == "and":
        horizontal_odds = width / (width + height)
        relation = ("left_of", "right_of") if rng.random() < horizontal_odds else ("above", "below")
        relation = relation[int(rng.integers(2))]
    short = min(width, height)
    margin = MARGIN * short
    da = SIZE_DIAMETER[scene.a.size] * short * rng.uniform(0.92, 1.08)
    db = SIZE_DIAMETER[scene.b.size] * short * rng.uniform(0.92, 1.08)
    vertical = relation in ("above", "below")
    along_limit, across_limit = (height, width) if vertical else (width, height)
    for _ in range(80):
        gap = rng.uniform(0.3, 0.8) * max(da, db)
        step = (da + db) / 2 + gap
        offset = rng.uniform(-0.25, 0.25) * step
        along = da / 2 + step + db / 2
        across = max(da, db) + abs(offset)
        if along + 2 * margin <= along_limit and across + 2 * margin <= across_limit:
            break
        da, db = da * 0.92, db * 0.92
    start = rng.uniform(margin, along_limit - margin - along)
    mid = rng.uniform(margin + across / 2, across_limit - margin - across / 2)
    first, second = start + da / 2, start + da / 2 + step
    if relation in ("below", "right_of"):
        first, second = start + db / 2 + step, start + db / 2
    a_across, b_across = mid - offset / 2, mid + offset / 2
    if vertical:
        a_xy, b_xy = (a_across, first), (b_across, second)
    else:
        a_xy, b_xy = (first, a_across), (second, b_across)
    return [
        PlacedObject(scene.a.shape, scene.a.colour, a_xy[0], a_xy[1], da, role="a"),
        PlacedObject(scene.b.shape, scene.b.colour, b_xy[0], b_xy[1], db, role="b"),
    ]
