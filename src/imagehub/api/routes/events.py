"""``GET /api/events``: the key's namespace's generation events as Server-Sent Events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header
from sse_starlette.sse import EventSourceResponse

from imagehub.api import sse
from imagehub.api.deps import hub, principal
from imagehub.services.hub import Hub
from imagehub.services.keys import Principal

router = APIRouter(prefix="/api", tags=["events"])


@router.get("/events", response_class=EventSourceResponse)
async def events(caller: Principal = Depends(principal), h: Hub = Depends(hub),
                 last_event_id: str | None = Header(None, alias="Last-Event-ID")) -> EventSourceResponse:
    subscription = h.deps.bus.subscribe(caller.namespaces, last_event_id,
                                        h.settings.event_catch_up_seconds)
    key_id = caller.key_id
    key_holds = (lambda: h.keys.is_active(key_id)) if key_id else None
    return sse.stream(subscription, h.settings.keepalive_seconds, h.settings.sse_padding_bytes,
                      key_holds)
