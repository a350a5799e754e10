"""The event bus: publish from any thread, subscribe from the event loop, replay what was missed.

``EventBus`` is the seam for scale-out (a later issue puts Redis pub/sub behind it);
``InProcessBus`` keeps the last ``buffer_size`` events in memory for ``Last-Event-ID`` replay.
Event ids are ``<boot>-<seq>``: a client that reconnects across a restart (another boot) gets the
whole buffer replayed rather than nothing. A new connection without ``Last-Event-ID`` gets the
events of the last ``catch_up_seconds`` first, so the seed page's "enqueue, then open the stream"
pipeline cannot miss a generation that finished before curl connected.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from typing import AsyncIterator, Protocol, Sequence

from imagehub.protocol import Event, EventName

_SEQ_DIGITS = 19
"""The most digits of a sequence number this process can reach (a count of events < 10**19)."""


class EventBus(Protocol):
    def publish(self, namespace: str, name: EventName, data: dict) -> Event: ...
    def subscribe(self, namespaces: Sequence[str], last_event_id: str | None = None,
                  catch_up_seconds: float = 0) -> "Subscription": ...


class Subscription:
    """One subscriber's stream: replayed events first, then live ones."""

    def __init__(self, bus: "InProcessBus", namespaces: Sequence[str], backlog: list[Event]) -> None:
        self._bus, self.namespaces = bus, set(namespaces)
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        self._loop = asyncio.get_running_loop()
        for event in backlog:
            self._queue.put_nowait(event)

    def offer(self, event: Event) -> None:
        """Called from any thread by the bus."""
        if event.namespace in self.namespaces:
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: Event) -> None:
        if not self._queue.full():  # a stuck client loses events rather than the server memory
            self._queue.put_nowait(event)

    async def get(self, timeout: float) -> Event | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def waiting(self, limit: int) -> list[Event]:
        """Up to ``limit`` of the events already queued, taken without waiting (a stream sends
        them together)."""
        return [self._queue.get_nowait() for _ in range(min(limit, self._queue.qsize()))]

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:  # pragma: no cover - convenience
        while True:
            event = await self._queue.get()
            yield event


class InProcessBus:
    """Events for one process, with a bounded replay buffer."""

    def __init__(self, buffer_size: int = 1000) -> None:
        self._boot = str(int(time.time() * 1000))
        self._seq = itertools.count(1)
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()

    def publish(self, namespace: str, name: EventName, data: dict) -> Event:
        with self._lock:
            event = Event(id=f"{self._boot}-{next(self._seq)}", name=name, namespace=namespace,
                          created=time.time(), data=data)
            self._buffer.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(event)
        return event

    def subscribe(self, namespaces: Sequence[str], last_event_id: str | None = None,
                  catch_up_seconds: float = 0) -> Subscription:
        with self._lock:
            if last_event_id:
                backlog = self._missed(last_event_id, set(namespaces))
            else:
                since = time.time() - catch_up_seconds
                backlog = [e for e in self._buffer if e.namespace in namespaces and e.created >= since]
            subscription = Subscription(self, namespaces, backlog)
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def _missed(self, last_event_id: str, namespaces: set[str]) -> list[Event]:
        mine = [e for e in self._buffer if e.namespace in namespaces]
        seen = self._seq_of(last_event_id)
        if seen is None:
            return mine
        return [e for e in mine if int(e.id.partition("-")[2]) > seen]

    def _seq_of(self, event_id: str) -> int | None:
        """The sequence number of an id this boot could have given; None for any other value
        (another boot, or garbage: a client's header is not trusted to be an id of ours)."""
        boot, _, seq = event_id.partition("-")
        if boot != self._boot or not (seq.isascii() and seq.isdigit()) or len(seq) > _SEQ_DIGITS:
            return None  # isascii: int() refuses '²'; the length: int() refuses 4300+ digits
        return int(seq)
