"""``POST /api/ai/images/generations`` and ``/edits``: the OpenAI Images API shape (API.md
section 7; ``/edits`` is OpenAI's ``images.edit``, multipart/form-data)."""

from __future__ import annotations

from threading import Event
from typing import Any

from fastapi import APIRouter, Depends

from imagehub.api.deps import client_gone, form_body, hub, json_body, principal
from imagehub.protocol import OpenAIImagesResponse
from imagehub.services.hub import Hub
from imagehub.services.keys import Principal
from imagehub.services.openai_images import OUTPUT_FORMATS, FormBody, OpenAIImagesService

router = APIRouter(prefix="/api/ai/images", tags=["openai"])

_FIELDS = {"model": {"type": "string"}, "prompt": {"type": "string"},
           "n": {"type": "integer", "minimum": 1, "maximum": 4},
           "size": {"type": "string", "examples": ["auto", "1024x1024", "1536x1024"]},
           "response_format": {"type": "string", "enum": ["url", "b64_json"]},
           "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
           "user": {"type": "string"}}
"""The OpenAI Images fields both routes take."""


def _body(content_type: str, properties: dict[str, Any], description: str) -> dict[str, Any]:
    """A route's request body for the OpenAPI document."""
    return {"requestBody": {"required": True, "content": {content_type: {"schema": {
        "type": "object", "required": ["model", "prompt", *(["image"] if "image" in properties else [])],
        "properties": properties, "additionalProperties": True, "description": description}}}}}


@router.post("/generations", response_model=OpenAIImagesResponse, response_model_exclude_none=True,
             openapi_extra=_body("application/json", _FIELDS,
                                 "The OpenAI Images shape; any other field of the model's "
                                 "request_schema (seed, negative_prompt, ...) passes through."))
def generations(caller: Principal = Depends(principal), body: Any = Depends(json_body),
                h: Hub = Depends(hub), gone: Event = Depends(client_gone)) -> OpenAIImagesResponse:
    return OpenAIImagesService(h.generations).generate(caller, body, gone)


@router.post("/edits", response_model=OpenAIImagesResponse, response_model_exclude_none=True,
             openapi_extra=_body("multipart/form-data", {
                 "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                           "description": "The image(s) to edit, as files ('image' or 'image[]'); "
                                          "they become the model's input_image."}, **_FIELDS},
                 "OpenAI's images.edit shape; any other field of the model's request_schema "
                 "(seed, strength, ...) passes through, read as the type the schema gives it."))
def edits(caller: Principal = Depends(principal), form: FormBody = Depends(form_body),
          h: Hub = Depends(hub), gone: Event = Depends(client_gone)) -> OpenAIImagesResponse:
    return OpenAIImagesService(h.generations).edit(caller, form, gone)
