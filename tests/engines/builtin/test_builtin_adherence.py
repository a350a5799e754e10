"""The shipped weights draw what a handful of plain-English prompts ask, judged by the grader.

The bars sit below issue 3's targets (which ``imagehub eval builtin`` checks on 400 held-out
prompts) so a few unlucky draws do not fail the suite, while a broken model still does.
"""

from __future__ import annotations

import numpy as np

from imagehub.catalog.sizes import output_size
from imagehub.engines.builtin.detect import read_image
from imagehub.engines.builtin.engine import BuiltinEngine
from imagehub.engines.builtin.evaluate import Expected, grade

CASES = [
    Expected("a crimson disc in the upper left corner", ["red"], ["circle"], (1,), "top_left"),
    Expected("three blue dots", ["blue"], ["circle"], (3,)),
    Expected("a red circle above a green square", ["red", "green"], ["circle", "square"], (2,),
             relation="above"),
    Expected("two yellow stars at the bottom on a navy background", ["yellow"], ["star"], (2,),
             "bottom", background=("navy",)),
    Expected("a large purple heart in the centre", ["purple"], ["heart"], (1,), "centre"),
    Expected("a small orange triangle to the right of a big cyan hexagon", ["orange", "cyan"],
             ["triangle", "hexagon"], (2,), relation="right_of"),
    Expected("four white rings on a black background", ["white"], ["ring"], (4,),
             background=("black",)),
    Expected("a pink crescent moon below a teal cross", ["pink", "teal"], ["moon", "cross"], (2,),
             relation="below"),
    Expected("a violet diamond in the lower right corner", ["purple"], ["diamond"], (1,),
             "bottom_right"),
    Expected("one brown pentagon on the left", ["brown"], ["pentagon"], (1,), "left"),
    Expected("a grey oval to the left of a lime star", ["gray", "lime"], ["oval", "star"], (2,),
             relation="left_of"),
    Expected("two scarlet plus signs in the top right corner on a white background", ["red"],
             ["cross"], (2,), "top_right", background=("white",)),
]
BARS = {"colour": 0.85, "shape": 0.8, "position": 0.75, "count": 0.8, "relation": 0.7}


def test_shipped_weights_follow_simple_prompts(engine: BuiltinEngine) -> None:
    dists = engine.distributions([case.prompt for case in CASES])
    marks: dict[str, list[bool]] = {}
    failed = []
    for index, (case, dist) in enumerate(zip(CASES, dists)):
        for seed in (0, 1):
            width, height = output_size("512", ("1:1", "16:9", "3:4")[(index + seed) % 3])
            image, _ = engine.draw(dist, seed, width, height)
            result = grade(case, read_image(image))
            for key, ok in result.items():
                marks.setdefault(key, []).append(ok)
            failed += [(case.prompt, seed, k) for k, ok in result.items() if not ok]
    scores = {key: float(np.mean(v)) for key, v in marks.items()}
    for key, bar in BARS.items():
        assert scores[key] >= bar, (key, scores, failed)
