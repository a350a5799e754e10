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
    colours = _draw_colours(p, kind, paired, rng)
    background = Background(kind, colours["bg_colour"],
                            None if kind == "solid" else colours["bg_colour2"])
    a = ObjectSpec(
        shape=SHAPES[draw(p["a_shape"], rng)], colour=colours["a_colour"],
        size=SIZES[draw(p["a_size"], rng)],
        count=1 if paired else COUNTS[draw(p["a_count"], rng)],
        position=None if paired else POSITIONS[draw(p["a_position"], rng)],
    )
    if not paired:
        return Scene(a=a, background=background)
    b = ObjectSpec(shape=SHAPES[draw(p["b_shape"], rng)], colour=colours["b_colour"],
                   size=SIZES[draw(p["b_size"], rng)])
    return Scene(a=a, background=background, relation=relation, b=b)


def _draw_colours(p: Distributions, kind: str, paired: bool,
                  rng: np.random.Generator) -> dict[str, str]:
    """Every colour, most certain first; each later one avoids clashing with those drawn."""
    objects = ["a_colour", "b_colour"] if paired else ["a_colour"]
    grounds = ["bg_colour"] if kind == "solid" else ["bg_colour", "bg_colour2"]
    drawn: dict[str, str] = {}
    for head in sorted(objects + grounds, key=lambda h: _entropy(p[h])):
        ok = np.array([_fits(head, c, drawn, objects, kind) for c in COLOUR_NAMES], dtype=float)
        drawn[head] = COLOUR_NAMES[draw(p[head], rng, ok)]
    return drawn


def _fits(head: str, colour: str, drawn: dict[str, str], objects: list[str], kind: str) -> bool:
    trial = {**drawn, head: colour}
    first, second = trial.get("bg_colour"), trial.get("bg_colour2")
    if first and second and colour_distance(first, second) < 90:
        return False
    if first is None and second is None:
        return True
    if first and second and kind != "solid":
        background = Background(kind, first, second)
    else:
        background = Background("solid", first or second or "")
    return not any(clashes(trial[o], background) for o in objects if o in trial)
