"""The contract every engine follows: local diffusers, the built-in model, remote providers.

An engine turns one :class:`EngineRequest` into an :class:`EngineResult`. It calls
``on_step(step, total_steps)`` after every step it can report (a denoising step, a poll of a
remote provider); that callback raises :class:`imagehub.errors.GenerationCancelled` when the job
was cancelled, which is how cancel stays cooperative: the engine lets the exception propagate and
keeps nothing.

The same parameter names serve every engine (diffusers ``__call__``): ``prompt``,
``negative_prompt``, ``width``, ``height``, ``num_inference_steps``, ``guidance_scale``, ``seed``,
``input_images``; anything model-specific travels in ``params`` (the validated request fields).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

StepCallback = Callable[[int, int], None]
"""``on_step(step, total_steps)``; 1-based step. Raises GenerationCancelled to stop the engine."""


def no_progress(step: int, total: int) -> None:
    """A step callback that does nothing (for direct engine calls and benchmarks)."""


@dataclass
class EngineRequest:
    """One generation as the engine sees it: validated, resolved, seeded."""

    prompt: str
    width: int
    height: int
    seed: int
    num_images: int = 1
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    input_images: list[Image.Image] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    """Every validated field of the request (aspect_ratio, resolution, provider options...)."""


@dataclass
class EngineResult:
    """What an engine hands back: the images at exactly the asked size, plus provenance."""

    images: list[Image.Image]
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance recorded on the generation row (e.g. provider, native size)."""


@runtime_checkable
class Engine(Protocol):
    """An engine: a loaded model (or a provider client) that generates images."""

    backend: str
    """Stable name of the engine family: ``builtin``, ``diffusers``, ``gemini``, ..."""

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        """JSON-Schema properties (with ``x-order``) of the fields this engine accepts.

        The catalog adds ``prompt``; the result is the model's published ``request_schema`` and
        the validator of its requests.
        """
        ...

    def availability(self) -> str | None:
        """None when the engine can serve now; else a sentence saying what to configure."""
        ...

    def fingerprint(self) -> str:
        """A short hash of what identifies the weights (index/config files), for reproducibility."""
        ...

    def load(self) -> None:
        """Load weights (idempotent). Called once before the first generate, off the event loop."""
        ...

    def generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        """Generate ``request.num_images`` images of ``request.width`` x ``request.height``."""
        ...


@runtime_checkable
class ChecksParams(Protocol):
    """An engine with rules across fields that its schema cannot say (an optional capability):
    checked when a request arrives, so a queued job is refused (400) rather than failing later."""

    def check_params(self, resolved: dict[str, Any]) -> None:
        """InvalidParams naming the fields when ``resolved`` (the model's fields with defaults
        filled) cannot run; never loads the model."""
        ...


@runtime_checkable
class BatchingEngine(Protocol):
    """An engine that can run several compatible requests as one batch (an optional capability).

    ``generate_batch`` returns one entry per request, in order: its result, or the exception that
    request alone ended with (GenerationCancelled when its ``on_step`` raised it, InvalidParams when
    it was refused). One request's cancel or refusal never spoils the others, and each request's
    images equal a solo ``generate`` of it within numeric tolerance (own seeds, own progress).
    """

    max_batch_size: int | None
    """Images one call takes at most; None: the server's ``MAX_BATCH_SIZE``."""

    def generate_batch(
        self, requests: list[EngineRequest], on_steps: list[StepCallback]
    ) -> list[EngineResult | Exception]: ...
