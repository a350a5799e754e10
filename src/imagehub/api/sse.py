"""SSE framing (API.md section 4): ``id:``/``event:``/one-line ``data:``, blank line, LF endings,
``: keep-alive`` comments while idle."""

from __future__ import annotations

import json
from typing import AsyncIterator

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from imagehub.events.bus import Subscription

SEP = "\n"  # LF, not CRLF: `awk '/^event: ...$/'` must match the line exactly


def frame(event_id: str, name: str, data: dict) -> ServerSentEvent:
    return ServerSentEvent(id=event_id, event=name, data=json.dumps(data, separators=(",", ":")),
                           sep=SEP)


def keep_alive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep=SEP)


async def _frames(subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    try:
        while True:
            event = await subscription.get(timeout=3600)
            if event is not None:
                yield frame(event.id, event.name.value, event.data)
    finally:
        subscription.close()


def stream(subscription: Subscription, keepalive_seconds: float) -> EventSourceResponse:
    return EventSourceResponse(
        _frames(subscription), ping=keepalive_seconds, ping_message_factory=keep_alive, sep=SEP,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
