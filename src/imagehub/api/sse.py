"""SSE framing (API.md section 4): ``id:``/``event:``/one-line ``data:``, blank line, LF endings,
``: keep-alive`` comments while idle."""

from __future__ import annotations

import json
from typing import AsyncIterator

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from imagehub.events.bus import Subscription
from imagehub.protocol import EventName

SEP = "\n"  # LF, not CRLF: `awk '/^event: ...$/'` must match the line exactly


def frame(event_id: str, name: str, data: dict) -> ServerSentEvent:
    return ServerSentEvent(id=event_id, event=name, data=json.dumps(data, separators=(",", ":")),
                           sep=SEP)


def keep_alive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep=SEP)


def padding(size: int) -> ServerSentEvent:
    """A comment of ``size`` bytes sent after each completed event.

    Debian's default awk (mawk) reads a pipe in 4 KiB blocks, so the seed page's
    ``curl -sN .../api/events | awk ...`` pipeline would otherwise sit on the completed event
    until 4 KiB more arrived. SSE clients ignore comments.
    """
    return ServerSentEvent(comment="-" * size, sep=SEP)


async def _frames(subscription: Subscription, padding_bytes: int) -> AsyncIterator[ServerSentEvent]:
    try:
        while True:
            event = await subscription.get(timeout=3600)
            if event is None:
                continue
            yield frame(event.id, event.name.value, event.data)
            if padding_bytes and event.name is EventName.COMPLETED:
                yield padding(padding_bytes)
    finally:
        subscription.close()


def stream(subscription: Subscription, keepalive_seconds: float,
           padding_bytes: int = 4096) -> EventSourceResponse:
    return EventSourceResponse(
        _frames(subscription, padding_bytes), ping=keepalive_seconds,
        ping_message_factory=keep_alive, sep=SEP,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
