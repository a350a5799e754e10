"""SSE framing (API.md section 4): ``id:``/``event:``/one-line ``data:``, blank line, LF endings,
``: keep-alive`` comments while idle."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from imagehub.events.bus import Subscription
from imagehub.protocol import Event, EventName

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


KEY_RECHECK_SECONDS = 1.0
"""How often an open stream asks whether its key still holds: while idle, and before a chunk of
events (always before one with a completed event, which carries image links)."""


CHUNK_EVENTS = 64
"""At most this many waiting events go out in one chunk."""


async def _frames(subscription: Subscription, padding_bytes: int,
                  key_holds: Callable[[], bool] | None) -> AsyncIterator[bytes]:
    """The events as SSE bytes. Events that wait together (a batch's rows start, step and end
    together) go out as one chunk: one send through the ASGI middleware and one socket write,
    not one per event; the bytes on the wire are the same."""
    pad = padding(padding_bytes).encode() if padding_bytes else b""
    checked = time.monotonic()
    try:
        while True:
            first = await subscription.get(timeout=KEY_RECHECK_SECONDS)
            events = [first, *subscription.waiting(CHUNK_EVENTS - 1)] if first is not None else []
            due = time.monotonic() - checked >= KEY_RECHECK_SECONDS
            completed = any(event.name is EventName.COMPLETED for event in events)
            if key_holds is not None and (due or completed):
                if not key_holds():  # revoked: the stream ends; a reconnect hears 401
                    return
                checked = time.monotonic()
            if events:
                yield b"".join(_encoded(event, pad) for event in events)
    finally:
        subscription.close()


def _encoded(event: Event, pad: bytes) -> bytes:
    """One event's frame, and the padding after a completed one."""
    data = frame(event.id, event.name.value, event.data).encode()
    return data + pad if event.name is EventName.COMPLETED else data


def stream(subscription: Subscription, keepalive_seconds: float, padding_bytes: int = 4096,
           key_holds: Callable[[], bool] | None = None) -> EventSourceResponse:
    """The subscription as an SSE response; ``key_holds`` (when auth is on) says whether the
    caller's key still holds, so revoking it ends its open streams within a second."""
    return EventSourceResponse(
        _frames(subscription, padding_bytes, key_holds), ping=keepalive_seconds,
        ping_message_factory=keep_alive, sep=SEP,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
