"""SSE framing (API.md section 4): ``id:``/``event:``/one-line ``data:``, blank line, LF endings,
``: keep-alive`` comments while idle."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

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


KEY_RECHECK_SECONDS = 1.0
"""How often an open stream asks whether its key still holds: while idle, and before an event
(always before a completed one, which carries image links)."""


async def _frames(subscription: Subscription, padding_bytes: int,
                  key_holds: Callable[[], bool] | None) -> AsyncIterator[ServerSentEvent]:
    checked = time.monotonic()
    try:
        while True:
            event = await subscription.get(timeout=KEY_RECHECK_SECONDS)
            due = time.monotonic() - checked >= KEY_RECHECK_SECONDS
            if key_holds is not None and (due or (event and event.name is EventName.COMPLETED)):
                if not key_holds():  # revoked: the stream ends; a reconnect hears 401
                    return
                checked = time.monotonic()
            if event is None:
                continue
            yield frame(event.id, event.name.value, event.data)
            if padding_bytes and event.name is EventName.COMPLETED:
                yield padding(padding_bytes)
    finally:
        subscription.close()


def stream(subscription: Subscription, keepalive_seconds: float, padding_bytes: int = 4096,
           key_holds: Callable[[], bool] | None = None) -> EventSourceResponse:
    """The subscription as an SSE response; ``key_holds`` (when auth is on) says whether the
    caller's key still holds, so revoking it ends its open streams within a second."""
    return EventSourceResponse(
        _frames(subscription, padding_bytes, key_holds), ping=keepalive_seconds,
        ping_message_factory=keep_alive, sep=SEP,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
