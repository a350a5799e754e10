"""The async queue (API.md section 3) and the history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query

from imagehub.api.deps import hub, json_body, principal
from imagehub.errors import InvalidParams, quote
from imagehub.protocol import (
    CancelResponse, EnqueueResponse, GenerationRow, GenerationStatus, HistoryPage, QueueList,
)
from imagehub.services.hub import Hub
from imagehub.services.keys import Principal

router = APIRouter(prefix="/api/ai", tags=["queue"])
_STATUSES = [s.value for s in GenerationStatus]
_MEDIA_TYPES = ["image", "video"]  # Oxen's kinds of generation; imagehub makes only images

_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "prompt"],
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"},
                   "num_generations": {"type": "integer", "minimum": 1, "maximum": 4}},
    "additionalProperties": True,
    "description": "Plus any field of the model's request_schema (GET /api/ai/models/{id}).",
}}}}}


def _statuses(given: list[str] | None) -> list[str]:
    """``?status=`` once, or several times for any of them; each one of the five."""
    for status in given or []:
        if status not in _STATUSES:
            raise InvalidParams(f"status: {quote(status)} is not one of {_STATUSES}")
    return list(dict.fromkeys(given or []))


def _media_type(given: str | None) -> str | None:
    """``?media_type=``: a misspelt one is a 400, not an empty list (``video`` is Oxen's other
    kind: a filter that matches nothing here)."""
    if given is not None and given not in _MEDIA_TYPES:
        raise InvalidParams(f"media_type: {quote(given)} is not one of {_MEDIA_TYPES}")
    return given


# enqueue and cancel write, so they run in the thread pool: a write waits for the process's
# SQLite writer (a worker's progress or result) and for another process holding the database,
# which must not stall the event loop and every stream on it (it cost 10% of the enqueues a
# second on 2 cores). get is one indexed read (WAL: it never waits) and runs on the loop;
# listings can be large and run in the thread pool.
@router.post("/queue", response_model=EnqueueResponse, openapi_extra=_BODY)
def enqueue(caller: Principal = Depends(principal), body: Any = Depends(json_body),
            h: Hub = Depends(hub),
            idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> EnqueueResponse:
    return h.generations.enqueue(caller, body, idempotency_key)


@router.get("/queue", response_model=QueueList)
def list_queue(status: list[str] | None = Query(None), model: str | None = None,
               media_type: str | None = None, limit: int = Query(1000, ge=1, le=1000),
               caller: Principal = Depends(principal), h: Hub = Depends(hub)) -> QueueList:
    return h.generations.list_active(caller, _statuses(status), model, _media_type(media_type),
                                     limit)


@router.get("/queue/{generation_id}", response_model=GenerationRow,
            response_model_exclude_none=False)
async def get_generation(generation_id: str, caller: Principal = Depends(principal),
                   h: Hub = Depends(hub)) -> GenerationRow:
    return h.generations.get(caller, generation_id)


@router.delete("/queue/{generation_id}", response_model=CancelResponse)
def cancel(generation_id: str, caller: Principal = Depends(principal),
           h: Hub = Depends(hub)) -> CancelResponse:
    return h.generations.cancel(caller, generation_id)


@router.get("/generations", response_model=HistoryPage)
def history(page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=1000),
            status: list[str] | None = Query(None), model: str | None = None,
            media_type: str | None = None,
            caller: Principal = Depends(principal), h: Hub = Depends(hub)) -> HistoryPage:
    return h.generations.history(caller, page, page_size, _statuses(status), model,
                                 _media_type(media_type))
