"""DiffusersEngine: a local diffusers pipeline (SD, SDXL, SD3, Flux) behind the engine contract."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub.catalog.sizes import ASPECT_RATIOS, RESOLUTION_BASES
from imagehub.engines.base import EngineRequest, EngineResult, StepCallback
from imagehub.engines.diffusers import loading
from imagehub.engines.diffusers.loading import Layout
from imagehub.errors import GenerationFailed, InvalidParams, ModelUnavailable

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

MAX_IMAGES = 4
MAX_STEPS = 150
MAX_GUIDANCE = 30.0

# (num_inference_steps, guidance_scale) per family; the signature's defaults (often 50 steps)
# are slower than these models need.
FAMILY_DEFAULTS: dict[str, tuple[int, float]] = {
    "sd": (30, 7.5),
    "sdxl": (30, 5.0),
    "sd3": (28, 7.0),
    "flux": (28, 3.5),
    "flux-schnell": (4, 0.0),
    "turbo": (1, 0.0),  # SD-Turbo / SDXL-Turbo: one step, no classifier-free guidance
    "sd3-turbo": (4, 0.0),  # SD3.5 Large Turbo
}


class DiffusersEngine:
    """A diffusers pipeline from a local folder or the local Hugging Face cache.

    ``source`` is a folder holding ``model_index.json`` or ``hf:org/name[@revision]``. Nothing is
    downloaded unless ``allow_downloads``. The request schema is read from the pipeline class's
    ``__call__`` and the config files, so it is known before the weights are loaded. Generation
    runs at the model's native size for the asked ratio, then scales to the asked size.
    """

    backend = "diffusers"

    def __init__(
        self,
        source: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        allow_downloads: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.source = source
        self.allow_downloads = allow_downloads
        self.cache_dir = cache_dir
        self._device = device
        self._dtype = dtype
        self._layout: Layout | None = None
        self._pipe: DiffusionPipeline | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # a pipeline keeps per-call state: one run at a time

    # -- before loading ------------------------------------------------------------------------

    def layout(self) -> Layout:
        """The model's layout from its config files (cached once found; raises ModelUnavailable)."""
        if self._layout is None:
            folder = loading.resolve_source(
                self.source, allow_downloads=self.allow_downloads, cache_dir=self.cache_dir
            )
            self._layout = loading.read_layout(folder)
        return self._layout

    def availability(self) -> str | None:
        try:
            self.layout()
        except ModelUnavailable as exc:
            return exc.detail
        return None

    def fingerprint(self) -> str:
        """16 hex of sha256 over the model's files (see ``loading.fingerprint_folder``); raises
        ModelUnavailable if the model is missing."""
        return loading.fingerprint_folder(self.layout().folder)

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        """The fields this model takes; only size and seed while the model files are missing."""
        try:
            layout = self.layout()
        except ModelUnavailable:
            return _size_properties("1K") | _seed_property(order=6)
        props = _size_properties(loading.nearest_resolution(layout.native_base, RESOLUTION_BASES))
        steps, guidance = self._defaults(layout)
        if _takes_negative_prompt(layout):
            props["negative_prompt"] = {
                "type": "string",
                "description": "What the image should not contain.",
                "x-order": 3,
            }
        props["num_inference_steps"] = {
            "type": "integer",
            "description": "Denoising steps: more is slower and usually finer.",
            "default": steps,
            "minimum": 1,
            "maximum": MAX_STEPS,
            "x-order": 4,
        }
        if _takes_guidance(layout):
            props["guidance_scale"] = {
                "type": "number",
                "description": "How closely to follow the prompt (classifier-free guidance).",
                "default": guidance,
                "minimum": 0,
                "maximum": MAX_GUIDANCE,
                "x-order": 5,
            }
        return props | _seed_property(order=6)

    def _defaults(self, layout: Layout) -> tuple[int, float]:
        family = layout.family
        turbo = "turbo" in self.source.lower()  # distilled: the name is all the folder says
        if family in ("sd", "sdxl") and turbo:
            family = "turbo"
        elif family == "sd3" and turbo:
            family = "sd3-turbo"
        elif family == "flux" and not layout.guidance_embeds:
            family = "flux-schnell"
        if family in FAMILY_DEFAULTS:
            return FAMILY_DEFAULTS[family]
        steps = layout.call_params.get("num_inference_steps")
        guidance = layout.call_params.get("guidance_scale")
        return (
            _number(steps.default if steps else None, 30),
            float(_number(guidance.default if guidance else None, 7.5)),
        )

    # -- loading -------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = loading.default_device()
        return self._device

    @property
    def pipeline(self) -> DiffusionPipeline:
        """The loaded diffusers pipeline (loading it first if needed); for benchmarks and tools."""
        self.load()
        assert self._pipe is not None
        return self._pipe

    def load(self) -> None:
        """Load the pipeline once (thread-safe), on the device, progress bars off."""
        if self._pipe is not None:
            return
        with self._load_lock:
            if self._pipe is not None:
                return
            folder = loading.resolve_source(
                self.source,
                allow_downloads=self.allow_downloads,
                cache_dir=self.cache_dir,
                weights=True,
            )
            dtype = loading.resolve_dtype(self._dtype, self.device)
            self._pipe = loading.load_pipeline(folder, self.device, dtype)

    # -- generating ----------------------------------------------------------------------------

    def generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        import torch

        # 1. Check inputs
        if not 1 <= request.num_images <= MAX_IMAGES:
            raise InvalidParams(f"num_images must be 1 to {MAX_IMAGES}, not {request.num_images}")
        if request.width < 1 or request.height < 1:
            raise InvalidParams(
                f"width and height must be positive, not {request.width}x{request.height}"
            )
        if request.input_images:
            raise InvalidParams(f"{self.source} is a text-to-image model; it takes no input_images")
        pipe = self.pipeline
        layout = self.layout()
        props = self.schema_properties()

        # 2. Native size for the asked ratio
        native_w, native_h = layout.native_size(request.width / request.height)

        # 3. Call arguments: only what this model's schema publishes
        steps = request.num_inference_steps or props["num_inference_steps"]["default"]
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "width": native_w,
            "height": native_h,
            "num_inference_steps": steps,
            "num_images_per_prompt": request.num_images,
            "generator": [
                torch.Generator(device="cpu").manual_seed(request.seed + i)
                for i in range(request.num_images)
            ],
            "callback_on_step_end": _step_reporter(on_step, steps),
            "output_type": "pil",
        }
        if "negative_prompt" in props and request.negative_prompt:
            kwargs["negative_prompt"] = request.negative_prompt
        guidance = None
        if "guidance_scale" in props:
            guidance = request.guidance_scale
            if guidance is None:
                guidance = props["guidance_scale"]["default"]
            kwargs["guidance_scale"] = guidance

        # 4. Denoise (GenerationCancelled from on_step propagates; nothing is kept)
        with self._run_lock, torch.inference_mode():
            output = pipe(**kwargs)
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged and any(flagged):
            raise GenerationFailed("the model's safety checker blocked the image")

        # 5. Scale to the asked size
        size = (request.width, request.height)
        images = [
            image if image.size == size else image.resize(size, resample=_lanczos())
            for image in output.images
        ]
        info: dict[str, Any] = {
            "pipeline": layout.pipeline_class.__name__,
            "native_width": native_w,
            "native_height": native_h,
            "num_inference_steps": steps,
        }
        if guidance is not None:
            info["guidance_scale"] = guidance
        return EngineResult(images=images, info=info)


def _step_reporter(on_step: StepCallback, steps: int) -> Any:
    """A ``callback_on_step_end`` that reports 1-based progress to ``on_step``."""

    def callback(pipe: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict:
        # Some schedulers run more timesteps than asked (Heun: 2n-1); the pipeline counts them.
        total = getattr(pipe, "num_timesteps", None) or steps
        on_step(step_index + 1, total)
        return tensors

    return callback


def _lanczos() -> Any:
    from PIL import Image

    return Image.Resampling.LANCZOS


def _takes_negative_prompt(layout: Layout) -> bool:
    # Flux accepts negative_prompt but ignores it unless true_cfg_scale > 1 (which doubles the
    # cost); a field that changes nothing is not published.
    params = layout.call_params
    return "negative_prompt" in params and "true_cfg_scale" not in params


def _takes_guidance(layout: Layout) -> bool:
    # FLUX.1-schnell has no guidance input: the pipeline accepts the value and ignores it.
    return "guidance_scale" in layout.call_params and layout.guidance_embeds is not False


def _size_properties(default_resolution: str) -> dict[str, dict[str, Any]]:
    return {
        "aspect_ratio": {
            "type": "string",
            "description": "Width:height of the image.",
            "enum": list(ASPECT_RATIOS),
            "default": "1:1",
            "x-order": 1,
        },
        "resolution": {
            "type": "string",
            "description": "Output size class; the model renders at its native size and is scaled.",
            "enum": list(RESOLUTION_BASES),
            "default": default_resolution,
            "x-order": 2,
        },
    }


def _seed_property(order: int) -> dict[str, dict[str, Any]]:
    return {
        "seed": {
            "type": "integer",
            "description": "Random seed: the same seed and fields give the same image.",
            "minimum": 0,
            "x-order": order,
        }
    }


def _number(value: Any, fallback: float) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback
