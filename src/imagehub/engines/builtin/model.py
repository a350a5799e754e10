"""The learned part of imagehub-tiny: a small attention head from MiniLM token states to a scene.

Four learned queries (object group ``a``, object ``b``, their ``relation``, the ``background``)
read the prompt's token states through two transformer-decoder layers; each query's output
feeds the classifiers of its attributes. Every classifier yields a distribution: for what the
prompt fixes it is sharp, for what it leaves open it is the prior learned from the data, and the
seeded sampler draws from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .encoder import ENCODER_DIM, MAX_TOKENS
from .world import BACKGROUNDS, COLOUR_NAMES, COUNTS, POSITIONS, RELATIONS, SHAPES, SIZES

if TYPE_CHECKING:
    import torch

QUERIES: tuple[str, ...] = ("a", "b", "relation", "background")
HEADS: dict[str, tuple[str, int]] = {
    "a_shape": ("a", len(SHAPES)),
    "a_colour": ("a", len(COLOUR_NAMES)),
    "a_size": ("a", len(SIZES)),
    "a_count": ("a", len(COUNTS)),
    "a_position": ("a", len(POSITIONS)),
    "b_shape": ("b", len(SHAPES)),
    "b_colour": ("b", len(COLOUR_NAMES)),
    "b_size": ("b", len(SIZES)),
    "relation": ("relation", len(RELATIONS)),
    "bg_kind": ("background", len(BACKGROUNDS)),
    "bg_colour": ("background", len(COLOUR_NAMES)),
    "bg_colour2": ("background", len(COLOUR_NAMES)),
}
"""Classifier name -> (the query it reads, number of classes)."""
CLASS_NAMES: dict[str, list[str]] = {
    "shape": list(SHAPES), "colour": list(COLOUR_NAMES), "size": list(SIZES),
    "count": [str(c) for c in COUNTS], "position": list(POSITIONS),
    "relation": list(RELATIONS), "kind": list(BACKGROUNDS),
}


@dataclass
class HeadConfig:
    dim: int = 128
    encoder_layers: int = 1
    decoder_layers: int = 2
    attention_heads: int = 4
    dropout: float = 0.1

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def build_head(config: HeadConfig) -> "torch.nn.Module":
    """A freshly initialised head (torch is imported here, not at module import)."""
    import torch
    from torch import nn

    class SceneHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = config.dim
            self.project = nn.Linear(ENCODER_DIM, d)
            self.positions = nn.Parameter(torch.zeros(MAX_TOKENS, d))
            self.pooled = nn.Linear(ENCODER_DIM, d)
            self.queries = nn.Parameter(torch.randn(len(QUERIES), d) * 0.02)
            self.encoder = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(d, config.attention_heads, 2 * d, config.dropout,
                                           batch_first=True, norm_first=True),
                config.encoder_layers, enable_nested_tensor=False,
            ) if config.encoder_layers else None
            self.decoder = nn.TransformerDecoder(
                nn.TransformerDecoderLayer(d, config.attention_heads, 2 * d, config.dropout,
                                           batch_first=True, norm_first=True),
                config.decoder_layers,
            )
            self.norm = nn.LayerNorm(d)
            self.classifiers = nn.ModuleDict({name: nn.Linear(d, k) for name, (_, k) in HEADS.items()})

        def forward(self, states: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
            length = states.shape[1]
            weights = mask.unsqueeze(-1).float()
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            tokens = self.project(states) + self.positions[:length]
            memory = tokens
            if self.encoder is not None:
                memory = self.encoder(tokens, src_key_padding_mask=~mask)
            queries = self.queries.unsqueeze(0) + self.pooled(pooled).unsqueeze(1)
            out = self.norm(self.decoder(queries, memory, memory_key_padding_mask=~mask))
            return {
                name: self.classifiers[name](out[:, QUERIES.index(query)])
                for name, (query, _) in HEADS.items()
            }

    return SceneHead()
