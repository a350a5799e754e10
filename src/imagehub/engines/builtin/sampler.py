"""Draw one concrete scene from the head's distributions with a seeded generator.

What the prompt fixes arrives as a sharp distribution and comes out as asked; what it leaves
open arrives as a broad one and varies with the seed. ``variety`` trims each distribution
before drawing (classes below ``(1 - variety) * max`` are dropped), so a sharp answer is never
undone by a stray low-probability draw. Colours are drawn most-certain first, and an open
colour avoids one that would melt into what is already fixed (a white shape on white).
"""

from __future__ import annotations

import numpy as np

from .world import (
    BACKGROUNDS,
    COLOUR_NAMES,
    COUNTS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Background,
    ObjectSpec,
    Scene,
    clashes,
    colour_distance,
)

Distributions = dict[str, np.ndarray]


def trim(probs: np.ndarray, variety: float) -> np.ndarray:
    """Drop classes below ``(1 - variety)`` of the most likely one; renormalise."""
    probs = np.asarray(probs, dtype=np.float64)
    keep = probs >= (1.0 - variety) * probs.max()
    out = np.where(keep, probs, 0.0)
    return out / out.sum()


def draw(probs: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None = None) -> int:
    """One class index; ``allowed`` masks classes out unless that would leave nothing."""
    if allowed is not None and (probs * allowed).sum() > 0:
        probs = probs * allowed
    probs = probs / probs.sum()
    return int(rng.choice(len(probs), p=probs))


def _entropy(probs: np.ndarray) -> float:
    nz = probs[probs > 0]
    return float(-(nz * np.log(nz)).sum())


def sample_scene(dists: Distributions, rng: np.random.Generator, variety: float = 0.5) -> Scene:
    """A scene drawn from ``dists`` (head name -> probabilities)."""
    p = {name: trim(v, variety) for name, v in dists.items()}
    relation = RELATIONS[draw(p["relation"], rng)]
    paired = relation != "none"
    kind = BACKGROUNDS[draw(p["bg_kind"], rng)]
    object_heads = ["a_colour", "b_colour"] if paired else ["a_colour"]
    object_entropy = min(_entropy(p[h]) for h in object_heads)
    if _entropy(p["bg_colour"]) < object_entropy:
        background = _draw_background(p, kind, [], rng)
        colours = [_draw_colour(p[h], background, rng) for h in object_heads]
    else:
        colours = [COLOUR_NAMES[draw(p[h], rng)] for h in object_heads]
        background = _draw_background(p, kind, colours, rng)
    a = ObjectSpec(
        shape=SHAPES[draw(p["a_shape"], rng)], colour=colours[0],
        size=SIZES[draw(p["a_size"], rng)],
        count=1 if paired else COUNTS[draw(p["a_count"], rng)],
        position=None if paired else POSITIONS[draw(p["a_position"], rng)],
    )
    if not paired:
        return Scene(a=a, background=background)
    b = ObjectSpec(shape=SHAPES[draw(p["b_shape"], rng)], colour=colours[1],
                   size=SIZES[draw(p["b_size"], rng)])
    return Scene(a=a, background=background, relation=relation, b=b)


def _draw_colour(probs: np.ndarray, background: Background, rng: np.random.Generator) -> str:
    allowed = np.array([not clashes(c, background) for c in COLOUR_NAMES], dtype=float)
    return COLOUR_NAMES[draw(probs, rng, allowed)]


def _draw_background(
    p: Distributions, kind: str, colours: list[str], rng: np.random.Generator
) -> Background:
    def fine(background: Background) -> bool:
        return not any(clashes(c, background) for c in colours)

    first_ok = np.array([fine(Background("solid", c)) for c in COLOUR_NAMES], dtype=float)
    first = COLOUR_NAMES[draw(p["bg_colour"], rng, first_ok)]
    if kind == "solid":
        return Background("solid", first)
    second_ok = np.array(
        [colour_distance(first, c) >= 90 and fine(Background(kind, first, c)) for c in COLOUR_NAMES],
        dtype=float,
    )
    second = COLOUR_NAMES[draw(p["bg_colour2"], rng, second_ok)]
    return Background(kind, first, second)
