"""Wire models: every response body, row and event payload imagehub sends (API.md).

No logic and no framework imports beyond pydantic. Request bodies are checked against the
model's ``request_schema`` (see ``imagehub.catalog.schema``), so only their generic part is here.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationStatus(str, Enum):
    """The whole lifecycle: queued → processing → succeeded | failed; queued|processing → cancelled."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (self.SUCCEEDED, self.FAILED, self.CANCELLED)


class EventName(str, Enum):
    COMPLETED = "media_generation_completed"
    STARTED = "media_generation_started"
    PROGRESS = "media_generation_progress"
    CANCELLED = "media_generation_cancelled"


GENERIC_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 4},
        "num_generations": {"type": "integer", "minimum": 1, "maximum": 4},
        "response_format": {"type": "string", "enum": ["url", "b64_json"]},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "target_namespace": {"type": "string", "minLength": 1},
    },
    "required": ["model"],
}
"""Fields every model takes besides its own ``request_schema`` (API.md sections 2–3)."""


# ---- errors -------------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    type: str
    title: str
    detail: str


class ErrorBody(BaseModel):
    error: ErrorDetail
    status: Literal["error"] = "error"
    status_message: str


# ---- sync generate ------------------------------------------------------------------------------

class ImageOut(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    width: int
    height: int

    model_config = ConfigDict(extra="forbid")


class GenerateResponse(BaseModel):
    model: str
    created: int
    images: list[ImageOut]
    image_url: str | None = None
    generation_id: str | None = None
    """(extension) the history row of this call."""


# ---- queue --------------------------------------------------------------------------------------

class EnqueuedGeneration(BaseModel):
    generation_id: str
    status: GenerationStatus


class EnqueueResponse(BaseModel):
    generations: list[EnqueuedGeneration]


class GenerationRow(BaseModel):
    """One generation as ``GET /api/ai/queue/{id}`` shows it; request params echo at top level."""

    model_config = ConfigDict(extra="allow")

    generation_id: str
    model_name: str
    prompt: str | None
    media_type: str = "image"
    status: GenerationStatus
    result_url: str | None = None
    error_message: str | None = None
    enqueued_at: int
    started_at: int | None = None
    completed_at: int | None = None
    # extensions, present only when they have a value: progress (while processing),
    # seed (the seed used), images (every image of a succeeded generation)


class QueueList(BaseModel):
    count: int
    generations: list[GenerationRow]


class CancelResponse(BaseModel):
    status: Literal["success"] = "success"
    generation_id: str


class HistoryPage(BaseModel):
    count: int
    page_number: int
    page_size: int
    total_pages: int
    total_entries: int
    generations: list[GenerationRow]


# ---- models -------------------------------------------------------------------------------------

class Capabilities(BaseModel):
    input: list[str]
    output: list[str]


class Developer(BaseModel):
    name: str


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "imagehub"
    display_name: str
    description: str
    model_type: str = "base"
    endpoint: str = "/images/generate"
    capabilities: Capabilities
    developer: Developer
    pricing: Any = None
    request_schema: dict[str, Any]
    json_request_schema: dict[str, Any]
    available: bool
    unavailable_reason: str | None = None
    backend: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


# ---- events -------------------------------------------------------------------------------------

class Event(BaseModel):
    """One event on the bus; ``data`` is sent as compact one-line JSON."""

    id: str
    name: EventName
    namespace: str
    created: float
    """Unix time of publication (for the catch-up window of new connections)."""
    data: dict[str, Any] = Field(default_factory=dict)


# ---- OpenAI Images shape (API.md section 7, extension) ------------------------------------------

class OpenAIImage(BaseModel):
    url: str | None = None
    b64_json: str | None = None


class OpenAIImagesResponse(BaseModel):
    """``POST /api/ai/images/generations``: what the ``openai`` SDK's ``images.generate`` reads."""

    created: int
    data: list[OpenAIImage]
    output_format: Literal["png", "jpeg", "webp"] = "png"
    size: str | None = None
    """The real ``WxH`` of the images (the nearest size the model's fields can give)."""
