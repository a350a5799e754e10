"""The learned part of imagehub-tiny: a small head from MiniLM token states to a scene.

For every attribute (``a_colour``, ``b_shape``, ``relation``, ``bg_colour2``...) the head
learns where in the prompt to look and what the words it finds there mean:

* an attention over the prompt's tokens plus one extra "the prompt does not say" slot;
* a classifier that reads each token's state (``crimson`` -> red, ``upper left`` -> top_left);
* a learned prior, used with the weight the attention gives to "does not say".

The attribute's distribution is the attention-weighted mix of the token readings and the prior.
A small transformer layer over MiniLM's states lets the attention tell the colour of the first
object from that of the second or of the background. Training supervises the attention with the
words the caption writer used for each attribute, which keeps learning cheap on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .encoder import ENCODER_DIM, MAX_TOKENS
from .world import BACKGROUNDS, COLOUR_NAMES, COUNTS, POSITIONS, RELATIONS, SHAPES, SIZES

if TYPE_CHECKING:
    import torch

HEADS: dict[str, tuple[str, int]] = {
    "a_shape": ("shape", len(SHAPES)),
    "a_colour": ("colour", len(COLOUR_NAMES)),
    "a_size": ("size", len(SIZES)),
    "a_count": ("count", len(COUNTS)),
    "a_position": ("position", len(POSITIONS)),
    "b_shape": ("shape", len(SHAPES)),
    "b_colour": ("colour", len(COLOUR_NAMES)),
    "b_size": ("size", len(SIZES)),
    "relation": ("relation", len(RELATIONS)),
    "bg_kind": ("kind", len(BACKGROUNDS)),
    "bg_colour": ("colour", len(COLOUR_NAMES)),
    "bg_colour2": ("colour", len(COLOUR_NAMES)),
}
"""Attribute -> (the class list it names, number of classes)."""
CLASS_NAMES: dict[str, list[str]] = {
    "shape": list(SHAPES), "colour": list(COLOUR_NAMES), "size": list(SIZES),
    "count": [str(c) for c in COUNTS], "position": list(POSITIONS),
    "relation": list(RELATIONS), "kind": list(BACKGROUNDS),
}


@dataclass
class HeadConfig:
    dim: int = 128
    encoder_layers: int = 2
    attention_heads: int = 4
    dropout: float = 0.1

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def build_head(config: HeadConfig) -> torch.nn.Module:
    """A freshly initialised head (torch is imported here, not at module import)."""
    import torch
    from torch import nn

    names = list(HEADS)

    class SceneHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = config.dim
            self.input_norm = nn.LayerNorm(ENCODER_DIM)
            self.project = nn.Linear(ENCODER_DIM, d)
            self.positions = nn.Parameter(torch.zeros(MAX_TOKENS, d))
            self.encoder = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(d, config.attention_heads, 2 * d, config.dropout,
                                           batch_first=True, norm_first=True),
                config.encoder_layers, enable_nested_tensor=False,
            ) if config.encoder_layers else None
            self.norm = nn.LayerNorm(d)
            self.attend = nn.Linear(d, len(names))
            self.unsaid = nn.Parameter(torch.zeros(len(names)))
            self.classifiers = nn.ModuleDict({n: nn.Linear(d, k) for n, (_, k) in HEADS.items()})
            self.priors = nn.ParameterDict({n: nn.Parameter(torch.zeros(k)) for n, (_, k) in HEADS.items()})

        def forward(self, states: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            """Log-probabilities per attribute, and attention logits ``[batch, length + 1, heads]``
            (the last position is "the prompt does not say")."""
            batch, length = states.shape[:2]
            x = self.project(self.input_norm(states)) + self.positions[:length]
            if self.encoder is not None:
                x = self.encoder(x, src_key_padding_mask=~mask)
            x = self.norm(x)
            scores = self.attend(x).masked_fill(~mask.unsqueeze(-1), float("-inf"))
            scores = torch.cat([scores, self.unsaid.expand(batch, 1, -1)], dim=1)
            weights = torch.softmax(scores, dim=1)
            out = {}
            for index, name in enumerate(names):
                readings = torch.softmax(self.classifiers[name](x), dim=-1)
                mixed = (weights[:, :length, index, None] * readings).sum(1)
                mixed = mixed + weights[:, length, index, None] * torch.softmax(self.priors[name], -1)
                out[name] = torch.log(mixed.clamp_min(1e-9))
            return out, scores

    return SceneHead()
