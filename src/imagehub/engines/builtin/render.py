"""Draw a :class:`~.world.Layout` as a crisp, anti-aliased RGB image at its exact size.

Each object is drawn on its own supersampled coverage mask, only as large as its bounding box,
then box-filtered down and composited in its colour; so a 4K canvas never needs a 4K
supersampled buffer and cost follows the objects' area, not the canvas's.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .world import COLOURS, SHAPE_OPS, Background, Layout, PlacedObject, shape_extent


def render(layout: Layout) -> Image.Image:
    """The RGB image of ``layout`` at exactly ``layout.width`` x ``layout.height``."""
    canvas = render_background(layout.background, layout.width, layout.height)
    for obj in layout.objects:
        draw_object(canvas, obj)
    return canvas


def render_background(background: Background, width: int, height: int) -> Image.Image:
    first = COLOURS[background.colour]
    if background.kind == "solid" or background.colour2 is None:
        return Image.new("RGB", (width, height), first)
    second = np.array(COLOURS[background.colour2], dtype=np.float32)
    length = height if background.kind == "vertical" else width
    t = np.linspace(0.0, 1.0, length, dtype=np.float32)[:, None]
    ramp = np.rint(np.array(first, dtype=np.float32) * (1 - t) + second * t).astype(np.uint8)
    if background.kind == "vertical":
        strip = Image.fromarray(np.ascontiguousarray(ramp[:, None, :]), "RGB")
    else:
        strip = Image.fromarray(np.ascontiguousarray(ramp[None, :, :]), "RGB")
    return strip.resize((width, height), Image.Resampling.NEAREST)


def supersample_factor(box_side: int) -> int:
    """4x4 coverage for small shapes, fewer samples once the shape alone is large."""
    if box_side <= 1024:
        return 4
    return 3 if box_side <= 1600 else 2


def shape_mask(shape: str, diameter: float, offset: tuple[float, float], size: tuple[int, int],
               factor: int) -> Image.Image:
    """Coverage mask (mode L, ``size``) of ``shape`` centred at ``offset`` in that box."""
    w, h = size
    mask = Image.new("L", (w * factor, h * factor), 0)
    draw = ImageDraw.Draw(mask)
    scale = diameter * factor
    ox, oy = offset[0] * factor, offset[1] * factor
    for op in SHAPE_OPS[shape]:
        fill = 255 if op[-1] else 0
        if op[0] == "ellipse":
            _, cx, cy, rx, ry, _ = op
            box = (ox + (cx - rx) * scale, oy + (cy - ry) * scale,
                   ox + (cx + rx) * scale, oy + (cy + ry) * scale)
            draw.ellipse(box, fill=fill)
        else:
            draw.polygon([(ox + x * scale, oy + y * scale) for x, y in op[1]], fill=fill)
    return mask.reduce(factor) if factor > 1 else mask


def draw_object(canvas: Image.Image, obj: PlacedObject) -> None:
    """Composite one object onto ``canvas`` in place."""
    x0e, y0e, x1e, y1e = shape_extent(obj.shape)
    d = obj.diameter
    x0 = max(0, math.floor(obj.cx + x0e * d) - 2)
    y0 = max(0, math.floor(obj.cy + y0e * d) - 2)
    x1 = min(canvas.width, math.ceil(obj.cx + x1e * d) + 2)
    y1 = min(canvas.height, math.ceil(obj.cy + y1e * d) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    factor = supersample_factor(max(x1 - x0, y1 - y0))
    mask = shape_mask(obj.shape, d, (obj.cx - x0, obj.cy - y0), (x1 - x0, y1 - y0), factor)
    canvas.paste(COLOURS[obj.colour], (x0, y0, x1, y1), mask)
