"""``imagehub eval builtin``: render held-out prompts and grade the pixels.

Prompts come from the caption writer in held-out mode (phrasings and colour x shape pairs the
model never trained on). Each is rendered through the engine's own path and read back by
:mod:`.detect`; the grader never sees the sampled scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagehub.catalog.sizes import output_size

from .captions import Caption, CaptionWriter
from .detect import Found, Reading, read_image
from .world import (
    BACKGROUNDS,
    COLOUR_NAMES,
    COUNTS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    Background,
    clashes,
    position_cell,
)

TARGETS: dict[str, float] = {
    "colour": 0.95, "shape": 0.90, "position": 0.85, "count": 0.90, "relation": 0.80,
}
EVAL_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
EVAL_SEED = 2026


@dataclass
class Expected:
    """What a held-out prompt asks for, from its caption labels."""

    prompt: str
    colours: list[str]
    shapes: list[str]
    counts: tuple[int, ...]
    position: str | None = None
    relation: str | None = None
    background: tuple[str, ...] | None = None


def expected_of(caption: Caption) -> Expected | None:
    """The checkable demands of ``caption``; None if it asks for something unreadable."""
    v = caption.labels.values
    colours = [COLOUR_NAMES[v["a_colour"]]]
    shapes = [SHAPES[v["a_shape"]]]
    relation = RELATIONS[v["relation"]]
    if relation == "none":
        count = v["a_count"]
        counts = tuple(COUNTS[c] for c in count) if isinstance(count, tuple) else (COUNTS[count],)
        position = POSITIONS[v["a_position"]] if v.get("a_position") is not None else None
    else:
        colours.append(COLOUR_NAMES[v["b_colour"]])
        shapes.append(SHAPES[v["b_shape"]])
        counts, position = (2,), None
    background = None
    if v.get("bg_colour") is not None:
        kind = v["bg_kind"]
        if isinstance(kind, int) and BACKGROUNDS[kind] == "solid":
            background = (COLOUR_NAMES[v["bg_colour"]],)
        else:
            background = (COLOUR_NAMES[v["bg_colour"]], COLOUR_NAMES[v["bg_colour2"]])
        drawn = Background("vertical" if len(background) == 2 else "solid", *background)
        if any(clashes(c, drawn) for c in colours):
            return None
    return Expected(caption.text, colours, shapes, counts, position, relation, background)


def heldout_prompts(n: int, seed: int = EVAL_SEED) -> list[Expected]:
    writer = CaptionWriter(np.random.default_rng(seed), heldout=True)
    out: list[Expected] = []
    while len(out) < n:
        expected = expected_of(writer.caption())
        if expected is not None:
            out.append(expected)
    return out


def grade(expected: Expected, reading: Reading) -> dict[str, bool]:
    """Per attribute, whether the image shows what the prompt asked."""
    found = reading.objects
    result = {"count": len(found) in expected.counts}
    result["colour"] = bool(found) and {o.colour for o in found} == set(expected.colours)
    result["shape"] = bool(found) and {o.shape for o in found} == set(expected.shapes)
    if expected.position is not None:
        result["position"] = reading.group_cell() == position_cell(expected.position)
    if expected.relation in ("above", "below", "left_of", "right_of"):
        result["relation"] = _relation_holds(expected, reading)
    if expected.background is not None:
        result["background"] = reading.background == expected.background
    return result


def _relation_holds(expected: Expected, reading: Reading) -> bool:
    """The asked side, with each object found by its colour and shape (colour alone when the
    shape was misdrawn but the colours tell the two apart): a relation is judged on placement."""

    def find(i: int) -> Found | None:
        colour, shape = expected.colours[i], expected.shapes[i]
        exact = [o for o in reading.objects if (o.colour, o.shape) == (colour, shape)]
        if len(exact) == 1:
            return exact[0]
        by_colour = [o for o in reading.objects if o.colour == colour]
        if expected.colours[0] != expected.colours[1] and len(by_colour) == 1:
            return by_colour[0]
        return None

    a, b = find(0), find(1)
    if a is None or b is None or a is b:
        return False
    dx, dy = b.cx - a.cx, b.cy - a.cy
    return {
        "above": dy > abs(dx), "below": -dy > abs(dx),
        "left_of": dx > abs(dy), "right_of": -dx > abs(dy),
    }[expected.relation]


def evaluate(
    weights_dir: Path | None = None, prompts: int = 400, seed: int = EVAL_SEED,
    resolution: str = "512", log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy per attribute on ``prompts`` held-out prompts, one image each."""
    from .engine import BuiltinEngine

    engine = BuiltinEngine(weights_dir)
    items = heldout_prompts(prompts, seed)
    dists = []
    for start in range(0, len(items), 64):
        dists += engine.distributions([e.prompt for e in items[start:start + 64]])
    tallies: dict[str, list[bool]] = {}
    failures = []
    for index, (expected, dist) in enumerate(zip(items, dists)):
        width, height = output_size(resolution, EVAL_RATIOS[index % len(EVAL_RATIOS)])
        image, _ = engine.draw(dist, seed + index, width, height)
        marks = grade(expected, read_image(image))
        for key, ok in marks.items():
            tallies.setdefault(key, []).append(ok)
        if not all(marks.values()):
            failures.append({"prompt": expected.prompt, "failed": [k for k, ok in marks.items() if not ok]})
    report = {
        "prompts": len(items),
        "resolution": resolution,
        "fingerprint": engine.fingerprint(),
        "accuracy": {k: round(float(np.mean(v)), 4) for k, v in sorted(tallies.items())},
        "checked": {k: len(v) for k, v in sorted(tallies.items())},
        "targets": TARGETS,
        "failures": failures,
    }
    report["passed"] = all(report["accuracy"].get(k, 0.0) >= t for k, t in TARGETS.items())
    if log:
        log(format_report(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    header = (f"imagehub-tiny {report['fingerprint']}: {report['prompts']} held-out prompts "
              f"at {report['resolution']}")
    lines = [header]
    for key, acc in report["accuracy"].items():
        target = report["targets"].get(key)
        mark = "" if target is None else ("  ok" if acc >= target else "  BELOW")
        goal = "" if target is None else f" (target {target:.0%})"
        lines.append(f"  {key:<11}{acc:7.1%}  n={report['checked'][key]}{goal}{mark}")
    return "\n".join(lines)
