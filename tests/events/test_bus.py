"""InProcessBus: namespace scoping, Last-Event-ID replay, catch-up window, cross-thread publish."""

from __future__ import annotations

import asyncio
import threading

from imagehub.events.bus import InProcessBus
from imagehub.protocol import EventName

DONE = EventName.COMPLETED


def test_subscriber_sees_only_its_namespaces() -> None:
    async def main() -> list[str]:
        bus = InProcessBus()
        sub = bus.subscribe(["a"])
        bus.publish("b", DONE, {"generation_id": "hidden"})
        threading.Thread(target=bus.publish, args=("a", DONE, {"generation_id": "mine"})).start()
        event = await sub.get(timeout=5)
        assert await sub.get(timeout=0.1) is None
        return [event.data["generation_id"]]

    assert asyncio.run(main()) == ["mine"]


def test_last_event_id_replays_only_later_events() -> None:
    async def main() -> list[str]:
        bus = InProcessBus()
        first = bus.publish("a", DONE, {"generation_id": "1"})
        bus.publish("a", DONE, {"generation_id": "2"})
        bus.publish("a", DONE, {"generation_id": "3"})
        sub = bus.subscribe(["a"], last_event_id=first.id)
        got = [await sub.get(timeout=1), await sub.get(timeout=1)]
        return [e.data["generation_id"] for e in got]

    assert asyncio.run(main()) == ["2", "3"]


def test_unknown_boot_replays_whole_buffer_and_buffer_is_bounded() -> None:
    async def main() -> list[str]:
        bus = InProcessBus(buffer_size=2)
        for i in range(4):
            bus.publish("a", DONE, {"generation_id": str(i)})
        sub = bus.subscribe(["a"], last_event_id="123-9")
        return [(await sub.get(timeout=1)).data["generation_id"] for _ in range(2)]

    assert asyncio.run(main()) == ["2", "3"]


def test_new_stream_catches_up_on_recent_events_only_when_asked() -> None:
    async def main() -> tuple[bool, str]:
        bus = InProcessBus()
        bus.publish("a", DONE, {"generation_id": "recent"})
        plain = bus.subscribe(["a"])
        caught = bus.subscribe(["a"], catch_up_seconds=30)
        return (await plain.get(timeout=0.1)) is None, (await caught.get(timeout=1)).data["generation_id"]

    assert asyncio.run(main()) == (True, "recent")



def test_a_last_event_id_no_int_can_hold_replays_the_buffer_like_other_garbage() -> None:
    """5000 digits pass ``isdigit`` but not ``int()`` (Python's 4300-digit limit); '²' passes
    ``isdigit`` but int() refuses it: both are garbage, and garbage replays the buffer."""
    async def main(suffixes: list[str]) -> list[list[str]]:
        bus = InProcessBus()
        boot = bus.publish("a", DONE, {"generation_id": "1"}).id.partition("-")[0]
        bus.publish("a", DONE, {"generation_id": "2"})
        replays = []
        for suffix in suffixes:
            sub = bus.subscribe(["a"], last_event_id=f"{boot}-{suffix}")
            replays.append([(await sub.get(timeout=1)).data["generation_id"] for _ in range(2)])
        return replays

    suffixes = ["9" * 5000, "²", "x", ""]
    assert asyncio.run(main(suffixes)) == [["1", "2"]] * len(suffixes)


def test_waiting_takes_at_most_its_limit_of_the_queued_events() -> None:
    async def main() -> list[list[str]]:
        bus = InProcessBus()
        subscription = bus.subscribe(["a"])
        for i in range(3):
            bus.publish("a", EventName.PROGRESS, {"generation_id": str(i)})
        await asyncio.sleep(0)
        return [[e.data["generation_id"] for e in subscription.waiting(limit)]
                for limit in (2, 2, 2)]

    assert asyncio.run(main()) == [["0", "1"], ["2"], []]
