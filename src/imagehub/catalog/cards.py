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
    origin: str = "built-in"
    """Where the card comes from, as messages about it name it: ``models.toml [models.<id>]``."""


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

_GEMINI_RATIOS = ["auto", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9"]


def _remote_fields(ratios: list[str], input_images: int, resolutions: list[str] | None = None,
                   web_search: bool = False) -> dict[str, Any]:
    """The fields of the other Nano Banana models: nano-banana-2's, less what the model lacks."""
    fields: dict[str, Any] = {"aspect_ratio": dict(NANO_BANANA_2_PROPERTIES["aspect_ratio"], enum=ratios)}
    if resolutions:
        fields["resolution"] = dict(NANO_BANANA_2_PROPERTIES["resolution"], enum=resolutions,
                                    default=resolutions[0])
    if web_search:
        fields["enable_web_search"] = dict(NANO_BANANA_2_PROPERTIES["enable_web_search"], default=False)
    fields["safety_tolerance"] = dict(NANO_BANANA_2_PROPERTIES["safety_tolerance"], default="4")
    fields["input_image"] = dict(NANO_BANANA_2_PROPERTIES["input_image"], maxItems=input_images)
    return fields


def _providers(gemini: str | list[str], fal: str, oxen: str) -> dict[str, Any]:
    """Options of a Nano Banana card: Gemini first, then fal.ai, then an upstream Oxen hub.
    Gemini's codes are the GA ones (the ``-preview`` codes were shut down on 2026-06-25), then
    the successor to try if Google has retired the model (``GeminiProvider``)."""
    return {"providers": ["gemini", "fal", "oxen"], "gemini_model": gemini, "fal_model": fal,
            "oxen_model": oxen}


GPT_IMAGE_1_PROPERTIES: dict[str, Any] = {
    "aspect_ratio": dict(NANO_BANANA_2_PROPERTIES["aspect_ratio"], enum=["auto", "1:1", "3:2", "2:3"]),
    "quality": {"type": "string", "default": "auto", "enum": ["auto", "low", "medium", "high"],
                "x-order": 2, "description": "Rendering quality (and cost) of the image."},
    "safety_tolerance": dict(NANO_BANANA_2_PROPERTIES["safety_tolerance"], default="4",
                             description="1-4: OpenAI's standard moderation; 5-6: its low setting "
                                         "(generations only: an edit is moderated at the standard "
                                         "level)."),
    "input_image": dict(NANO_BANANA_2_PROPERTIES["input_image"], maxItems=16),
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
        options=_providers(["gemini-3.1-flash-image", "gemini-nano-banana-2.1"],
                           "fal-ai/nano-banana-2", "nano-banana-2"),
    ),
    ModelCard(
        id="nano-banana", backend="gemini", display_name="Nano Banana",
        description="Nano Banana (Gemini 2.5 Flash Image): Google's first fast image generation "
                    "and editing model, at 1K.",
        developer="Google", inputs=["text", "image"], created=1756166400,
        properties=_remote_fields(_GEMINI_RATIOS, input_images=3),
        options=_providers("gemini-2.5-flash-image", "fal-ai/nano-banana", "nano-banana"),
    ),
    ModelCard(
        id="nano-banana-2-lite", backend="gemini", display_name="Nano Banana 2 Lite",
        description="Nano Banana 2 Lite (Gemini 3.1 Flash-Lite Image): the fastest, lowest-cost "
                    "Nano Banana, fixed at 1K.",
        developer="Google", inputs=["text", "image"], created=1782777600,
        properties=_remote_fields(ASPECT_RATIOS, input_images=14),
        options=_providers("gemini-3.1-flash-lite-image", "fal-ai/nano-banana-2-lite",
                           "nano-banana-2-lite"),
    ),
    ModelCard(
        id="google-nano-banana-pro", backend="gemini", display_name="Nano Banana Pro",
        description="Nano Banana Pro (Gemini 3 Pro Image): Google's studio-quality image model "
                    "with reasoning, search grounding and up to 4K output.",
        developer="Google", inputs=["text", "image"], created=1763596800,
        properties=_remote_fields(_GEMINI_RATIOS, input_images=14,
                                  resolutions=["1K", "2K", "4K"], web_search=True),
        options=_providers("gemini-3-pro-image", "fal-ai/nano-banana-pro",
                           "google-nano-banana-pro"),
    ),
    ModelCard(
        id="gpt-image-1", backend="openai", display_name="GPT Image 1",
        description="OpenAI's natively multimodal image model, through the OpenAI Images API.",
        developer="OpenAI", inputs=["text", "image"], created=1745366400,
        properties=GPT_IMAGE_1_PROPERTIES,
        options={"providers": ["openai"], "openai_model": "gpt-image-1"},
    ),
]
