"""Model cards: what the catalog knows of a model before any engine is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagehub.catalog.sizes import ASPECT_RATIOS


@dataclass
class ModelCard:
    """One catalog entry, from the built-in list or the user's TOML file."""

    id: str
    backend: str
    display_name: str
    description: str = ""
    developer: str = "imagehub"
    inputs: list[str] = field(default_factory=lambda: ["text"])
    created: int = 1764201600
    options: dict[str, Any] = field(default_factory=dict)
    """Engine constructor arguments (``source``, ``device``, ``dtype``...)."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Overrides of the engine's schema defaults (e.g. ``num_inference_steps = 1``)."""
    properties: dict[str, Any] | None = None
    """A fixed schema (remote models whose fields a provider defines); None: ask the engine."""
    unavailable_reason: str | None = None
    """Set when the card cannot be served whatever the engine says (e.g. no provider yet)."""


NANO_BANANA_2_PROPERTIES: dict[str, Any] = {
    "aspect_ratio": {"type": "string", "default": "auto", "enum": ASPECT_RATIOS, "x-order": 1,
                     "description": "Aspect ratio for the generated image"},
    "resolution": {"type": "string", "default": "2K", "enum": ["1K", "2K", "4K", "512"], "x-order": 2,
                   "description": "Resolution of the generated image"},
    "enable_web_search": {"type": "boolean", "default": True, "x-order": 3,
                          "description": "Enable web search for the image generation task. This "
                          "will allow the model to use the latest information from the web to "
                          "generate the image."},
    "safety_tolerance": {"type": "string", "default": "6", "enum": ["1", "2", "3", "4", "5", "6"],
                         "x-order": 4,
                         "description": "The safety tolerance level for content moderation. 1 is "
                         "the most strict (blocks most content), 6 is the least strict."},
    "google_search": {"type": "boolean", "x-order": 5,
                      "description": "Same as enable_web_search (later name)."},
    "thinking_level": {"type": "string", "enum": ["minimal", "high"], "x-order": 6,
                       "description": "How much the model reasons before drawing."},
    "input_image": {"type": ["string", "array"], "items": {"type": "string"}, "maxItems": 14,
                    "x-order": 7, "description": "Reference images: https URLs or data URIs."},
}

BUILTIN_CARDS: list[ModelCard] = [
    ModelCard(
        id="imagehub-tiny", backend="builtin", display_name="imagehub tiny",
        description="imagehub's own small text-to-image model: simple scenes of coloured shapes "
                    "described in plain English, drawn crisply at any size. Runs offline on CPU.",
    ),
    ModelCard(
        id="nano-banana-2", backend="gemini", display_name="Nano Banana 2",
        description="Nano Banana 2 is a text-to-image model that generates images from text "
                    "descriptions.",
        developer="Google", inputs=["text", "image"], created=1750000000,
        properties=NANO_BANANA_2_PROPERTIES,
        unavailable_reason="nano-banana-2 runs at a remote provider, and no provider is configured: "
                           "set IMAGEHUB_GEMINI_API_KEY (Google Gemini), IMAGEHUB_FAL_API_KEY "
                           "(fal.ai) or IMAGEHUB_OXEN_API_KEY (an Oxen hub)",
    ),
]
