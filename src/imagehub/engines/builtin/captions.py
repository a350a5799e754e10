"""The writer of training (and held-out evaluation) captions: scene graphs -> plain English.

This is the only module that knows English words for the world's classes. It is used to make
data; the generation path never reads it. Phrase lists are split in two: phrasings the model
trains on and phrasings kept back for evaluation (``heldout=True``): sentence frames, noun-phrase
frames, prefixes and the phrasings of counts, sizes, positions, relations and backgrounds. The
colour and shape words are the model's vocabulary and are all trained on. A fixed set of
colour x shape pairs never appears in training captions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .world import BACKGROUNDS, COLOUR_NAMES, COUNTS, POSITIONS, RELATIONS, SHAPES, SIZES

# Phrase tables: class -> (training phrasings, held-out phrasings).
COLOUR_WORDS: dict[str, tuple[list[str], list[str]]] = {
    "red": (["red", "crimson", "scarlet", "ruby", "cherry red", "vivid red"], []),
    "orange": (["orange", "tangerine", "amber", "vivid orange"], []),
    "yellow": (["yellow", "golden", "lemon", "gold", "sunny yellow"], []),
    "lime": (["lime", "lime green", "chartreuse", "bright lime"], []),
    "green": (["green", "emerald", "forest green", "grass green", "leafy green"], []),
    "teal": (["teal", "deep teal", "teal blue", "rich teal"], []),
    "cyan": (["cyan", "aqua", "turquoise", "vivid cyan"], []),
    "blue": (["blue", "azure", "cobalt", "royal blue", "sapphire", "vivid blue"], []),
    "navy": (["navy", "navy blue", "dark blue", "midnight blue", "deep navy"], []),
    "purple": (["purple", "violet", "plum", "amethyst", "vivid purple"], []),
    "pink": (["pink", "rose", "hot pink", "magenta", "fuchsia", "soft pink"], []),
    "brown": (["brown", "chocolate", "coffee", "chestnut", "earthy brown"], []),
    "black": (["black", "jet black", "ebony", "coal black", "pitch black"], []),
    "white": (["white", "ivory", "snow white", "pure white", "bright white"], []),
    "gray": (["gray", "grey", "silver", "slate grey", "ash grey", "light grey"], []),
}
SHAPE_WORDS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "circle": ([
        ("circle", "circles"), ("disc", "discs"), ("dot", "dots"), ("round disk", "round disks"),
        ("ball", "balls")
    ], []),
    "oval": ([
        ("oval", "ovals"), ("ellipse", "ellipses"), ("egg shape", "egg shapes"),
        ("elongated circle", "elongated circles")
    ], []),
    "square": ([
        ("square", "squares"), ("box", "boxes"), ("block", "blocks"),
        ("square tile", "square tiles")
    ], []),
    "diamond": ([
        ("diamond", "diamonds"), ("rhombus", "rhombi"), ("lozenge", "lozenges"),
        ("diamond shape", "diamond shapes")
    ], []),
    "triangle": ([
        ("triangle", "triangles"), ("pyramid shape", "pyramid shapes"),
        ("three-sided shape", "three-sided shapes")
    ], []),
    "pentagon": ([
        ("pentagon", "pentagons"), ("five-sided shape", "five-sided shapes"),
        ("pentagonal shape", "pentagonal shapes")
    ], []),
    "hexagon": ([
        ("hexagon", "hexagons"), ("six-sided shape", "six-sided shapes"),
        ("hexagonal tile", "hexagonal tiles")
    ], []),
    "star": ([
        ("star", "stars"), ("five-pointed star", "five-pointed stars"),
        ("starburst", "starbursts")
    ], []),
    "heart": ([
        ("heart", "hearts"), ("love heart", "love hearts"), ("heart shape", "heart shapes")
    ], []),
    "ring": ([
        ("ring", "rings"), ("donut", "donuts"), ("hoop", "hoops"), ("annulus", "annuli"),
        ("doughnut", "doughnuts")
    ], []),
    "cross": ([
        ("cross", "crosses"), ("plus sign", "plus signs"), ("plus", "pluses"),
        ("plus symbol", "plus symbols")
    ], []),
    "moon": ([
        ("moon", "moons"), ("crescent", "crescents"), ("crescent moon", "crescent moons"),
        ("lunar crescent", "lunar crescents")
    ], []),
}
GENERIC_SHAPE_WORDS = ([("shape", "shapes"), ("object", "objects"), ("thing", "things")],
                       [("item", "items")])
SIZE_WORDS: dict[str, tuple[list[str], list[str]]] = {
    "tiny": (["tiny", "very small", "minuscule", "teeny"], ["itty-bitty"]),
    "small": (["small", "little", "smallish"], ["petite"]),
    "medium": (["medium", "medium-sized", "mid-sized", "average-sized"], ["moderately sized"]),
    "large": (["large", "big", "sizeable"], ["fairly big"]),
    "huge": (["huge", "giant", "enormous", "massive"], ["gigantic"]),
}
COUNT_WORDS: dict[int, tuple[list[str], list[str]]] = {
    1: (["a", "one", "a single", "just one"], ["exactly one"]),
    2: (["two", "2", "a pair of"], ["exactly two"]),
    3: (["three", "3", "a trio of"], ["exactly three"]),
    4: (["four", "4", "a group of four"], ["exactly four"]),
}
PLURAL_WORDS = (["some", "several", "a few", "multiple", "a bunch of"], ["a handful of"])
POSITION_WORDS: dict[str, tuple[list[str], list[str]]] = {
    "top_left": (["in the top left corner", "at the top left", "in the upper left corner",
                  "in the top-left", "at the upper left"], ["up in the top left"]),
    "top": (["at the top", "at the top of the image", "near the top edge", "at the top center",
             "along the top"], ["up at the top"]),
    "top_right": (["in the top right corner", "at the top right", "in the upper right corner",
                   "in the top-right", "at the upper right"], ["up in the top right"]),
    "left": (["on the left", "on the left side", "at the left edge", "in the middle of the left side",
              "at the left"], ["over on the left"]),
    "centre": (["in the center", "in the centre", "in the middle", "at the center of the image",
                "centered"], ["right in the middle"]),
    "right": (["on the right", "on the right side", "at the right edge",
               "in the middle of the right side", "at the right"], ["over on the right"]),
    "bottom_left": (["in the bottom left corner", "at the bottom left", "in the lower left corner",
                     "in the bottom-left", "at the lower left"], ["down in the bottom left"]),
    "bottom": (["at the bottom", "at the bottom of the image", "near the bottom edge",
                "at the bottom center", "along the bottom"], ["down at the bottom"]),
    "bottom_right": (["in the bottom right corner", "at the bottom right",
                      "in the lower right corner", "in the bottom-right", "at the lower right"],
                     ["down in the bottom right"]),
}
RELATION_WORDS: dict[str, tuple[list[str], list[str]]] = {
    "and": (["and", "next to", "beside", "with", "alongside"], ["together with"]),
    "above": (["above", "over", "on top of", "higher than", "sitting above"], ["hovering over"]),
    "below": (["below", "under", "beneath", "underneath", "lower than"], ["sitting beneath"]),
    "left_of": (["to the left of", "left of", "on the left of", "at the left of"],
                ["just left of"]),
    "right_of": (["to the right of", "right of", "on the right of", "at the right of"],
                 ["just right of"]),
}
SOLID_BG = (["on a {c} background", "against a {c} backdrop", "with a {c} background",
             "on a plain {c} background", "on {c}", "on a {c} canvas"],
            ["set against solid {c}"])
GRADIENT_BG = (["on a {c} to {d} gradient", "on a gradient from {c} to {d}",
                "over a {c}-to-{d} gradient background"], ["against a {c} into {d} blend"])
VERTICAL_BG = (["on a background fading from {c} at the top to {d} at the bottom",
                "with a vertical gradient from {c} to {d}",
                "on a {c} to {d} gradient from top to bottom"],
               ["against a sky going from {c} above to {d} below"])
HORIZONTAL_BG = (["on a background fading from {c} on the left to {d} on the right",
                  "with a horizontal gradient from {c} to {d}",
                  "on a {c} to {d} gradient running left to right"],
                 ["against a {c} to {d} blend from left to right"])
BG_SENTENCES = (["The background is {c}.", "Background: {c}."], ["The backdrop is plain {c}."])
GROUP_FRAMES = (
    ["{np} {pos}{bg}", "{pre}{np} {pos}{bg}", "{Pos}, {np}{bg}", "{np} is {pos}{bg}",
     "{np} placed {pos}{bg}", "{Bg}, {np} {pos}"],
    ["{np} can be seen {pos}{bg}", "{pre}{np} sitting {pos}{bg}"],
)
PAIR_FRAMES = (
    ["{a} {rel} {b}{bg}", "{pre}{a} {rel} {b}{bg}", "{a} is {rel} {b}{bg}",
     "{Bg}, {a} {rel} {b}", "{a} placed {rel} {b}{bg}"],
    ["{pre}{a} that is {rel} {b}{bg}", "{a} positioned {rel} {b}{bg}"],
)
PREFIXES = (["", "a picture of ", "an image of ", "draw ", "please draw ", "show ", "render ",
             "there is ", "generate ", "make "], ["a simple drawing of ", "illustrate "])
NP_FRAMES = (["{count} {size} {colour} {shape}", "{count} {colour} {shape}",
              "{count} {size} {shape} in {colour}", "{count} {shape} colored {colour}"],
             ["{count} {colour}-colored {shape}", "{count} {size} {shape} painted {colour}"])

HELDOUT_PAIR_FRACTION = 0.15


def heldout_combos(seed: int = 7) -> set[tuple[str, str]]:
    """Colour x shape pairs that never appear together in training captions."""
    rng = np.random.default_rng(seed)
    pairs = [(c, s) for c in COLOUR_NAMES for s in SHAPES]
    picks = rng.choice(len(pairs), size=int(len(pairs) * HELDOUT_PAIR_FRACTION), replace=False)
    return {pairs[i] for i in sorted(picks)}


@dataclass
class Labels:
    """What the caption says: a class index per head, ``None`` for left open (the head learns
    its prior), and heads absent from ``values`` carry no loss."""

    values: dict[str, int | None | tuple[int, ...]] = field(default_factory=dict)
    """A tuple means "one of these" (e.g. a plural without a number: 2, 3 or 4)."""


@dataclass
class Caption:
    text: str
    labels: Labels
    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Head -> character ranges of the words that say it (for the head's attention)."""


class CaptionWriter:
    """Samples scene descriptions and writes them in English.

    ``heldout=False`` writes training captions (training phrasings only, no held-out colour x
    shape pair); ``heldout=True`` writes evaluation captions, each using at least one held-out
    phrasing and preferring held-out colour x shape pairs.
    """

    def __init__(self, rng: np.random.Generator, heldout: bool = False) -> None:
        self.rng = rng
        self.heldout = heldout
        self.blocked = heldout_combos()
        self._used_heldout = False

    # -- phrase choice -------------------------------------------------------------------------
    def pick(self, table: tuple[list, list], p_heldout: float = 0.35):
        train, held = table
        if self.heldout and held and self.rng.random() < p_heldout:
            self._used_heldout = True
            return held[int(self.rng.integers(len(held)))]
        return train[int(self.rng.integers(len(train)))]

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    # -- scene sampling ------------------------------------------------------------------------
    def colour_shape(self) -> tuple[str, str]:
        while True:
            colour, shape = self.choice(COLOUR_NAMES), self.choice(SHAPES)
            blocked = (colour, shape) in self.blocked
            if self.heldout and self.rng.random() < 0.5 and not blocked:
                continue
            if not self.heldout and blocked:
                continue
            return colour, shape

    def caption(self) -> Caption:
        """One caption with its labels."""
        while True:
            self._used_heldout = False
            cap = self._pair() if self.rng.random() < 0.4 else self._group()
            if not self.heldout or self._used_heldout:
                return cap

    def _np(self, side: str, colour: str | None, shape: str | None, size: str | None,
            count: int | None, plural: bool) -> str:
        """A noun phrase; ``count`` None with ``plural`` writes "some ...s"."""
        if shape is None:
            singular, plural_word = self.pick(GENERIC_SHAPE_WORDS)
        else:
            singular, plural_word = self.pick(SHAPE_WORDS[shape])
        many = plural or (count is not None and count > 1)
        noun = plural_word if many else singular
        if count is None:
            count_word = self.pick(PLURAL_WORDS) if plural else "a"
        else:
            count_word = self.pick(COUNT_WORDS[count])
        if side == "a":
            count_word = mark("a_count", count_word)
        if colour is None:
            frame = "{count} {size} {shape}" if size else "{count} {shape}"
        else:
            train, held = (
                [f for f in frames if ("{size}" in f) == bool(size)] for frames in NP_FRAMES
            )
            frame = self.pick((train, held))
        text = frame.format(
            count=count_word,
            size=mark(f"{side}_size", self.pick(SIZE_WORDS[size])) if size else "",
            colour=mark(f"{side}_colour", self.pick(COLOUR_WORDS[colour])) if colour else "",
            shape=mark(f"{side}_shape", noun),
        )
        return " ".join(text.split())

    def _background(self, labels: Labels, forbidden: set[str]) -> tuple[str, str]:
        """(phrase for the end of a sentence, phrase for its start); fills the bg labels."""
        roll = self.rng.random()
        options = [c for c in COLOUR_NAMES if c not in forbidden]
        c1 = self.choice(options)
        c2 = self.choice([c for c in options if c != c1])
        w1 = mark("bg_colour", self.pick(COLOUR_WORDS[c1]))
        w2 = mark("bg_colour2", self.pick(COLOUR_WORDS[c2]))
        i1, i2 = COLOUR_NAMES.index(c1), COLOUR_NAMES.index(c2)
        vertical, horizontal = BACKGROUNDS.index("vertical"), BACKGROUNDS.index("horizontal")
        if roll < 0.3:
            labels.values.update(bg_kind=None, bg_colour=None, bg_colour2=None)
            return "", ""
        if roll < 0.7:
            labels.values.update(bg_kind=BACKGROUNDS.index("solid"), bg_colour=i1)
            if self.rng.random() < 0.15:
                sentence = mark("bg_kind", self.pick(BG_SENTENCES).format(c=w1))
                return ". " + sentence, sentence.rstrip(".")
            phrase = mark("bg_kind", self.pick(SOLID_BG).format(c=w1))
            return " " + phrase, phrase[0].upper() + phrase[1:]
        if roll < 0.8:
            table, kind = GRADIENT_BG, (vertical, horizontal)
        elif roll < 0.9:
            table, kind = VERTICAL_BG, vertical
        else:
            table, kind = HORIZONTAL_BG, horizontal
        labels.values.update(bg_kind=kind, bg_colour=i1, bg_colour2=i2)
        phrase = mark("bg_kind", self.pick(table).format(c=w1, d=w2))
        return " " + phrase, phrase[0].upper() + phrase[1:]

    def _group(self) -> Caption:
        labels = Labels()
        colour, shape = self.colour_shape()
        if self.rng.random() < 0.1 and not self.heldout:
            colour = None
        if self.rng.random() < 0.06 and not self.heldout:
            shape = None
        size = self.choice(SIZES) if self.rng.random() < 0.45 else None
        count: int | None = self.choice(COUNTS)
        plural = False
        if count != 1 and self.rng.random() < 0.12:
            count, plural = None, True
        position = self.choice(POSITIONS) if self.rng.random() < 0.75 else None
        labels.values.update(
            a_shape=SHAPES.index(shape) if shape else None,
            a_colour=COLOUR_NAMES.index(colour) if colour else None,
            a_size=SIZES.index(size) if size else None,
            a_count=COUNTS.index(count) if count else (1, 2, 3),
            a_position=POSITIONS.index(position) if position else None,
            relation=RELATIONS.index("none"),
        )
        np_text = self._np("a", colour, shape, size, count, plural)
        bg_end, bg_start = self._background(labels, {colour} if colour else set())
        if position is None:
            text = self.pick(PREFIXES) + np_text + bg_end
        else:
            pos = mark("a_position", self.pick(POSITION_WORDS[position]))
            frame = self.pick(GROUP_FRAMES)
            if "{Bg}" in frame and not bg_start:
                frame = "{np} {pos}{bg}"
            text = frame.format(np=np_text, pos=pos, Pos=pos[0].upper() + pos[1:], bg=bg_end,
                                Bg=bg_start, pre=self.pick(PREFIXES))
        return _finish(text, labels)

    def _pair(self) -> Caption:
        labels = Labels()
        ca, sa = self.colour_shape()
        while True:
            cb, sb = self.colour_shape()
            if (cb, sb) != (ca, sa):
                break
        size_a = self.choice(SIZES[:4]) if self.rng.random() < 0.3 else None
        size_b = self.choice(SIZES[:4]) if self.rng.random() < 0.3 else None
        relation = self.choice(RELATIONS[1:])
        labels.values.update(
            a_shape=SHAPES.index(sa), a_colour=COLOUR_NAMES.index(ca),
            a_size=SIZES.index(size_a) if size_a else None, a_count=0,
            relation=RELATIONS.index(relation),
            b_shape=SHAPES.index(sb), b_colour=COLOUR_NAMES.index(cb),
            b_size=SIZES.index(size_b) if size_b else None,
        )
        a_text = self._np("a", ca, sa, size_a, 1, False)
        b_text = self._np("b", cb, sb, size_b, 1, False)
        bg_end, bg_start = self._background(labels, {ca, cb})
        frame = self.pick(PAIR_FRAMES)
        if "{Bg}" in frame and not bg_start:
            frame = "{a} {rel} {b}{bg}"
        text = frame.format(a=a_text, b=b_text,
                            rel=mark("relation", self.pick(RELATION_WORDS[relation])),
                            bg=bg_end, Bg=bg_start, pre=self.pick(PREFIXES))
        return _finish(text, labels)


def mark(head: str, words: str) -> str:
    """``words`` tagged as saying ``head`` (stripped into :attr:`Caption.spans` at the end)."""
    return f"{_OPEN}{head}{_NAMED}{words}{_CLOSE}"


_OPEN, _NAMED, _CLOSE = "\x01", "\x02", "\x03"


def _finish(marked: str, labels: Labels) -> Caption:
    """Tidy spacing and articles, then strip the tags into character spans."""
    marked = " ".join(marked.split()).replace(" ,", ",").replace("..", ".")
    marked = re.sub(r"\b([Aa])(\x03?) (?=(?:\x01\w+\x02)*[aeiouAEIOU])", r"\1n\2 ", marked)
    text: list[str] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(marked):
        ch = marked[i]
        if ch == _OPEN:
            j = marked.index(_NAMED, i)
            stack.append((marked[i + 1:j], len(text)))
            i = j + 1
            continue
        if ch == _CLOSE:
            head, start = stack.pop()
            spans.setdefault(head, []).append((start, len(text)))
        else:
            text.append(ch)
        i += 1
    out = "".join(text)
    return Caption(out[:1].upper() + out[1:], labels, spans)
