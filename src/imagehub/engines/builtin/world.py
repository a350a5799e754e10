"""The world imagehub-tiny draws: its classes, their geometry and colours, and the scene types.

This module names the *classes* of the world (a palette index, a shape index, a size class...)
and says what each looks like on the canvas. It holds no English: the words that describe these
classes live only in :mod:`.captions`, the writer of training data. The path from a prompt to
pixels goes through the text encoder and the learned head, which output class indices; this
module turns indices into geometry and RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SHAPES: tuple[str, ...] = (
    "circle", "oval", "square", "diamond", "triangle", "pentagon",
    "hexagon", "star", "heart", "ring", "cross", "moon",
)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 34, 40),
    "orange": (246, 134, 22),
    "yellow": (250, 214, 36),
    "lime": (152, 222, 44),
    "green": (30, 150, 62),
    "teal": (0, 124, 128),
    "cyan": (44, 206, 232),
    "blue": (36, 96, 228),
    "navy": (20, 30, 104),
    "purple": (128, 48, 182),
    "pink": (246, 122, 188),
    "brown": (128, 76, 36),
    "black": (18, 18, 18),
    "white": (246, 246, 246),
    "gray": (132, 132, 132),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SIZES: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge")
SIZE_DIAMETER: dict[str, float] = {
    "tiny": 0.08, "small": 0.14, "medium": 0.22, "large": 0.34, "huge": 0.5,
}
"""Diameter of the shape's bounding circle, as a fraction of the canvas's short side."""
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
POSITIONS: tuple[str, ...] = (
    "top_left", "top", "top_right", "left", "centre", "right",
    "bottom_left", "bottom", "bottom_right",
)
RELATIONS: tuple[str, ...] = ("none", "and", "above", "below", "left_of", "right_of")
BACKGROUNDS: tuple[str, ...] = ("solid", "vertical", "horizontal")
"""``vertical``: colour 1 at the top fading to colour 2 at the bottom; ``horizontal``: left to right."""


def position_cell(position: str) -> tuple[int, int]:
    """(column, row) of a position in the 3 x 3 grid."""
    index = POSITIONS.index(position)
    return index % 3, index // 3


# Each shape is drawn as a list of operations in a unit frame centred on (0, 0) whose bounding
# circle has diameter 1: ("ellipse", cx, cy, rx, ry, fill) or ("poly", points, fill); fill=False
# cuts a hole. The renderer and the grader's templates both draw from these.
ShapeOp = tuple


def _regular(n: int, radius: float, phase: float) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        radius = outer if k % 2 == 0 else inner
        angle = -math.pi / 2 + math.pi * k / points
        out.append((radius * math.cos(angle), radius * math.sin(angle)))
    return out


def _heart(samples: int = 96) -> list[tuple[float, float]]:
    pts = []
    for k in range(samples):
        t = 2 * math.pi * k / samples
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x, y))
    # Centre the heart's bounding box on the origin and fit it in the unit circle.
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    scale = 0.5 / max(math.hypot(x - cx, y - cy) for x, y in pts)
    return [((x - cx) * scale, (y - cy) * scale) for x, y in pts]


def _cross(arm: float, half: float) -> list[tuple[float, float]]:
    a, h = arm / 2, half
    return [(-a, -h), (a, -h), (a, -a), (h, -a), (h, a), (a, a), (a, h), (-a, h),
            (-a, a), (-h, a), (-h, -a), (-a, -a)]


SHAPE_OPS: dict[str, list[ShapeOp]] = {
    "circle": [("ellipse", 0.0, 0.0, 0.5, 0.5, True)],
    "oval": [("ellipse", 0.0, 0.0, 0.5, 0.3, True)],
    "square": [("poly", [(-0.36, -0.36), (0.36, -0.36), (0.36, 0.36), (-0.36, 0.36)], True)],
    "diamond": [("poly", [(0.0, -0.5), (0.34, 0.0), (0.0, 0.5), (-0.34, 0.0)], True)],
    "triangle": [("poly", _regular(3, 0.5, -math.pi / 2), True)],
    "pentagon": [("poly", _regular(5, 0.5, -math.pi / 2), True)],
    "hexagon": [("poly", _regular(6, 0.5, 0.0), True)],
    "star": [("poly", _star(5, 0.5, 0.21), True)],
    "heart": [("poly", _heart(), True)],
    "ring": [("ellipse", 0.0, 0.0, 0.5, 0.5, True), ("ellipse", 0.0, 0.0, 0.29, 0.29, False)],
    "cross": [("poly", _cross(0.3, 0.46), True)],
    "moon": [("ellipse", 0.0, 0.0, 0.5, 0.5, True), ("ellipse", 0.22, -0.1, 0.42, 0.42, False)],
}


def shape_extent(shape: str) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of a shape in its unit frame (filled parts only)."""
    xs: list[float] = []
    ys: list[float] = []
    for op in SHAPE_OPS[shape]:
        if not op[-1]:
            continue
        if op[0] == "ellipse":
            _, cx, cy, rx, ry, _ = op
            xs += [cx - rx, cx + rx]
            ys += [cy - ry, cy + ry]
        else:
            xs += [p[0] for p in op[1]]
            ys += [p[1] for p in op[1]]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass
class ObjectSpec:
    """One group of identical objects: ``count`` copies of a coloured shape."""

    shape: str
    colour: str
    size: str
    count: int = 1
    position: str | None = None
    """Cell of the 3 x 3 grid the group sits in; None places it freely."""


@dataclass
class Background:
    kind: str
    colour: str
    colour2: str | None = None


@dataclass
class Scene:
    """What one image shows: a group ``a``, optionally a second object ``b`` related to it."""

    a: ObjectSpec
    background: Background
    relation: str = "none"
    b: ObjectSpec | None = None


@dataclass
class PlacedObject:
    """An object on the canvas, in pixels: centre and bounding-circle diameter."""

    shape: str
    colour: str
    cx: float
    cy: float
    diameter: float
    role: str = "a"


@dataclass
class Layout:
    width: int
    height: int
    background: Background
    objects: list[PlacedObject] = field(default_factory=list)


CLASH_DISTANCE = 90.0
"""Objects closer than this (RGB distance) to their background would not read as objects."""


def colour_distance(first: str, second: str) -> float:
    a, b = COLOURS[first], COLOURS[second]
    return math.dist(a, b)


def clashes(colour: str, background: Background) -> bool:
    """True when an object of ``colour`` would melt into ``background`` anywhere on it."""
    if background.kind == "solid" or background.colour2 is None:
        return colour_distance(colour, background.colour) < CLASH_DISTANCE
    p, a, b = (COLOURS[colour], COLOURS[background.colour], COLOURS[background.colour2])
    ab = [b[i] - a[i] for i in range(3)]
    length2 = sum(v * v for v in ab) or 1.0
    t = max(0.0, min(1.0, sum((p[i] - a[i]) * ab[i] for i in range(3)) / length2))
    nearest = [a[i] + t * ab[i] for i in range(3)]
    return math.dist(p, nearest) < CLASH_DISTANCE
