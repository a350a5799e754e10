"""``POST /api/ai/images/generate`` and ``/edit``: synchronous generation (API.md section 2)."""

from __future__ import annotations

from threading import Event
from typing import Any

from fastapi import APIRouter, Depends

from imagehub.api.deps import client_gone, hub, json_body, principal
from imagehub.protocol import GenerateResponse
from imagehub.services.hub import Hub
from imagehub.services.keys import Principal

router = APIRouter(prefix="/api/ai/images", tags=["images"])

_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "prompt"],
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"},
                   "n": {"type": "integer", "minimum": 1, "maximum": 4},
                   "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                   "seed": {"type": "integer"}},
    "additionalProperties": True,
    "description": "Plus any field of the model's request_schema (GET /api/ai/models/{id}).",
}}}}}


@router.post("/generate", response_model=GenerateResponse, response_model_exclude_none=True,
             openapi_extra=_BODY)
def generate(caller: Principal = Depends(principal), body: Any = Depends(json_body),
             h: Hub = Depends(hub), gone: Event = Depends(client_gone)) -> GenerateResponse:
    return h.generations.generate(caller, body, gone=gone)


@router.post("/edit", response_model=GenerateResponse, response_model_exclude_none=True,
             openapi_extra=_BODY)
def edit(caller: Principal = Depends(principal), body: Any = Depends(json_body),
         h: Hub = Depends(hub), gone: Event = Depends(client_gone)) -> GenerateResponse:
    return h.generations.generate(caller, body, edit=True, gone=gone)
