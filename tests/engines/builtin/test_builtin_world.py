"""Layout, rendering and the grader, checked on scenes whose truth is known."""

from __future__ import annotations

import numpy as np

from imagehub.catalog.sizes import output_size
from imagehub.engines.builtin.captions import CaptionWriter, heldout_combos
from imagehub.engines.builtin.detect import read_image
from imagehub.engines.builtin.layout import layout_scene
from imagehub.engines.builtin.render import render
from imagehub.engines.builtin.world import (
    BACKGROUNDS,
    COLOUR_NAMES,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Background,
    ObjectSpec,
    Scene,
    clashes,
    colour_distance,
    position_cell,
)


def random_scene(rng: np.random.Generator) -> Scene:
    while True:
        kind = BACKGROUNDS[rng.integers(3)]
        bg = Background(kind, COLOUR_NAMES[rng.integers(15)], COLOUR_NAMES[rng.integers(15)])
        if colour_distance(bg.colour, bg.colour2) < 90:
            continue
        a = ObjectSpec(SHAPES[rng.integers(12)], COLOUR_NAMES[rng.integers(15)],
                       SIZES[rng.integers(5)], int(rng.integers(1, 5)), POSITIONS[rng.integers(9)])
        b = ObjectSpec(SHAPES[rng.integers(12)], COLOUR_NAMES[rng.integers(15)],
                       SIZES[rng.integers(4)])
        if clashes(a.colour, bg) or clashes(b.colour, bg) or (a.shape, a.colour) == (b.shape, b.colour):
            continue
        if rng.random() < 0.5:
            return Scene(a=a, background=bg)
        a.count, a.position = 1, None
        return Scene(a=a, background=bg, relation=RELATIONS[rng.integers(1, 6)], b=b)


def test_the_grader_reads_known_scenes_back() -> None:
    rng = np.random.default_rng(5)
    ratios = ["1:1", "16:9", "3:4", "2:3", "21:9"]
    for index in range(40):
        scene = random_scene(rng)
        width, height = output_size("512", ratios[index % len(ratios)])
        layout = layout_scene(scene, width, height, rng)
        reading = read_image(render(layout))
        found = sorted((o.colour, o.shape) for o in reading.objects)
        truth = sorted((o.colour, o.shape) for o in layout.objects)
        assert found == truth, (scene, found)
        if scene.b is None:
            assert reading.group_cell() == position_cell(scene.a.position)
        else:
            a = next(o for o in reading.objects if (o.colour, o.shape) == (scene.a.colour, scene.a.shape))
            b = next(o for o in reading.objects if o is not a)
            dx, dy = b.cx - a.cx, b.cy - a.cy
            if scene.relation == "above":
                assert dy > abs(dx)
            if scene.relation == "left_of":
                assert dx > abs(dy)
        assert reading.background[0] == scene.background.colour


def test_objects_are_anti_aliased_and_flat_inside() -> None:
    scene = Scene(a=ObjectSpec("circle", "red", "huge", 1, "centre"),
                  background=Background("solid", "white"))
    image = np.asarray(render(layout_scene(scene, 512, 512, np.random.default_rng(0))))
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert (214, 34, 40) in colours and (246, 246, 246) in colours
    assert len(colours) > 8  # edge pixels blend the two


def test_held_out_captions_use_held_out_material() -> None:
    train = CaptionWriter(np.random.default_rng(0))
    blocked = heldout_combos()
    for _ in range(300):
        caption = train.caption()
        v = caption.labels.values
        for side in ("a", "b"):
            if v.get(f"{side}_colour") is not None and v.get(f"{side}_shape") is not None:
                pair = (COLOUR_NAMES[v[f"{side}_colour"]], SHAPES[v[f"{side}_shape"]])
                assert pair not in blocked
    assert len(blocked) >= 20
