"""The grader: read a rendered image back into objects, by pixels alone.

It knows the world's rules (a solid or linear-gradient background, flat-coloured shapes from
the palette, the shapes' outlines) but nothing of how an image was made: it segments what
differs from the background, then names each piece's colour (nearest palette entry), shape
(best-overlapping outline template) and place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .render import shape_mask
from .world import COLOUR_NAMES, COLOURS, SHAPES, shape_extent

FOREGROUND_DELTA = 40
"""A pixel further than this (max over channels) from the background is foreground."""
MIN_AREA_FRACTION = 0.0003
_PALETTE = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.float32)


@dataclass
class Found:
    colour: str
    shape: str
    cx: float
    cy: float
    area: int
    bbox: tuple[int, int, int, int]
    shape_score: float = 0.0


@dataclass
class Reading:
    width: int
    height: int
    background: tuple[str, ...]
    """The palette colours of the background: one (solid) or two (gradient: start, end)."""
    background_kind: str
    objects: list[Found] = field(default_factory=list)

    def group_cell(self) -> tuple[int, int] | None:
        """(column, row) in the 3 x 3 grid of the centre of all objects together."""
        if not self.objects:
            return None
        cx = float(np.mean([o.cx for o in self.objects]))
        cy = float(np.mean([o.cy for o in self.objects]))
        return min(2, int(3 * cx / self.width)), min(2, int(3 * cy / self.height))


def nearest_colour(rgb: np.ndarray) -> str:
    return COLOUR_NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(1)))]


def read_image(image: Image.Image) -> Reading:
    """Segment ``image`` and name everything in it."""
    from scipy import ndimage

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[:2]
    background, kind, colours = _background(pixels)
    foreground = np.abs(pixels - background).max(axis=2) > FOREGROUND_DELTA
    labels, _ = ndimage.label(foreground, structure=np.ones((3, 3)))
    reading = Reading(width, height, colours, kind)
    min_area = MIN_AREA_FRACTION * width * height
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[box] == index
        area = int(mask.sum())
        if area < min_area:
            continue
        core = ndimage.binary_erosion(mask, iterations=2)
        if core.sum() < 4:
            core = mask
        colour = nearest_colour(np.median(pixels[box][core], axis=0))
        shape, score = classify_shape(mask)
        ys, xs = np.nonzero(mask)
        y0, x0 = box[0].start, box[1].start
        bbox = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
        reading.objects.append(Found(
            colour, shape, (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, area, bbox, score,
        ))
    return reading


def _background(pixels: np.ndarray) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Fit solid, vertical and horizontal backgrounds to the border; keep the best."""
    left, right = pixels[:, :2].mean(1), pixels[:, -2:].mean(1)
    top, bottom = pixels[:2].mean(0), pixels[-2:].mean(0)
    by_row = (left + right) / 2
    by_col = (top + bottom) / 2
    vertical_err = np.abs(top - by_row[0]).mean() + np.abs(bottom - by_row[-1]).mean()
    horizontal_err = np.abs(left - by_col[0]).mean() + np.abs(right - by_col[-1]).mean()
    if vertical_err <= horizontal_err:
        model = np.broadcast_to(by_row[:, None, :], pixels.shape)
        start, end = by_row[0], by_row[-1]
        kind = "vertical"
    else:
        model = np.broadcast_to(by_col[None, :, :], pixels.shape)
        start, end = by_col[0], by_col[-1]
        kind = "horizontal"
    first, second = nearest_colour(start), nearest_colour(end)
    if np.abs(start - end).max() < FOREGROUND_DELTA / 2:
        return model, "solid", (first,)
    return model, kind, (first, second)


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """The shape whose outline, fitted to ``mask``'s bounding box, overlaps it best (IoU)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    crop = mask[y0:y1, x0:x1]
    h, w = crop.shape
    pad = 2
    target = np.zeros((h + 2 * pad, w + 2 * pad), dtype=bool)
    target[pad:pad + h, pad:pad + w] = crop
    best, best_score = SHAPES[0], -1.0
    for shape in SHAPES:
        ex0, ey0, ex1, ey1 = shape_extent(shape)
        d = float(np.sqrt((w * h) / ((ex1 - ex0) * (ey1 - ey0))))
        cx = pad + w / 2 - (ex0 + ex1) / 2 * d
        cy = pad + h / 2 - (ey0 + ey1) / 2 * d
        template = np.asarray(shape_mask(shape, d, (cx, cy), (w + 2 * pad, h + 2 * pad), 2)) >= 128
        union = np.logical_or(template, target).sum()
        score = np.logical_and(template, target).sum() / max(union, 1)
        if score > best_score:
            best, best_score = shape, float(score)
    return best, best_score
