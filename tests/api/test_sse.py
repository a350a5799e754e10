"""SSE framing of a subscription: events that wait together go out as one chunk, byte for byte
what one frame per event would send; the key is asked before a chunk with a completed event."""

from __future__ import annotations

import asyncio

from imagehub.api import sse
from imagehub.events.bus import InProcessBus
from imagehub.protocol import Event, EventName


async def _first_chunk(holds: bool, padding_bytes: int) -> tuple[list[Event], bytes | None, int]:
    bus = InProcessBus()
    subscription = bus.subscribe(["a"])
    events = [bus.publish("a", name, {"generation_id": "g", "n": i}) for i, name in enumerate(
        [EventName.STARTED, EventName.COMPLETED, EventName.PROGRESS])]
    await asyncio.sleep(0)  # the bus hands events to the loop: let it put them in the queue
    asked = []
    frames = sse._frames(subscription, padding_bytes, lambda: asked.append(1) is None and holds)
    try:
        chunk: bytes | None = await frames.__anext__()
    except StopAsyncIteration:
        chunk = None
    await frames.aclose()
    return events, chunk, len(asked)


def test_events_waiting_together_go_out_as_one_chunk_of_the_same_bytes() -> None:
    events, chunk, asked = asyncio.run(_first_chunk(holds=True, padding_bytes=32))

    one_by_one = [sse.frame(e.id, e.name.value, e.data).encode() for e in events]
    assert chunk == one_by_one[0] + one_by_one[1] + sse.padding(32).encode() + one_by_one[2]
    assert asked == 1  # once for the chunk with the completed event


def test_a_revoked_key_ends_the_stream_before_a_completed_event_goes_out() -> None:
    _, chunk, asked = asyncio.run(_first_chunk(holds=False, padding_bytes=0))

    assert chunk is None and asked == 1

