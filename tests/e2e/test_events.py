"""The SSE stream (API.md section 4): framing, keep-alive, ids, Last-Event-ID replay, extension
events, and cancel of a processing job (no image kept, no completed event)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess


class StreamReader:
    """Reads /api/events in a thread, keeping raw lines and parsed events."""

    def __init__(self, server, headers: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._client = httpx.Client(timeout=None)
        self._headers = {"Authorization": f"Bearer {server.key}", **(headers or {})}
        self._url = f"{server.url}/api/events"
        self.status: int | None = None
        self.content_type = ""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        current: dict[str, Any] = {}
        try:
            with self._client.stream("GET", self._url, headers=self._headers) as r:
                self.status, self.content_type = r.status_code, r.headers["content-type"]
                for line in r.iter_lines():
                    self.lines.append(line)
                    if line == "":
                        if "event" in current:
                            self.events.append(current)
                        current = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        current[key] = json.loads(value) if key == "data" else value
        except (httpx.HTTPError, RuntimeError):
            pass

    def wait(self, predicate, timeout: float = 60) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no matching event; got {[e['event'] for e in self.events]}")

    def close(self) -> None:
        self._client.close()


def _for(gen_id: str, name: str):  # type: ignore[no-untyped-def]
    return lambda e: e["event"] == name and e["data"].get("generation_id") == gen_id


def test_framing_keepalive_ids_and_lifecycle(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    stream = StreamReader(server)
    try:
        time.sleep(1.5)  # the module's server sends keep-alive every second
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        assert ": keep-alive" in stream.lines
        gen_id = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "events"}).json()[
            "generations"][0]["generation_id"]
        done = stream.wait(_for(gen_id, "media_generation_completed"))
        assert done["data"]["status"] == "succeeded" and done["data"]["url"].startswith(server.url)
        names = [e["event"] for e in stream.events if e["data"].get("generation_id") == gen_id]
        assert names == ["media_generation_started", "media_generation_progress",
                         "media_generation_progress", "media_generation_completed"]
        progress = [e["data"] for e in stream.events if e["event"] == "media_generation_progress"
                    and e["data"]["generation_id"] == gen_id]
        assert [(p["step"], p["total_steps"]) for p in progress] == [(1, 2), (2, 2)]
        assert all("id" in e for e in stream.events)
        # every data line is one line of compact JSON
        data_lines = [line for line in stream.lines if line.startswith("data: ")]
        assert all(", " not in line[6:] and '": ' not in line[6:] for line in data_lines)
    finally:
        stream.close()


def test_last_event_id_replays_missed_events(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    first = StreamReader(server)
    gen_a = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "a"}).json()[
        "generations"][0]["generation_id"]
    seen = first.wait(_for(gen_a, "media_generation_completed"))
    first.close()
    gen_b = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "b"}).json()[
        "generations"][0]["generation_id"]
    wait_for_status(api, gen_b, {"succeeded"})
    second = StreamReader(server, {"Last-Event-ID": seen["id"]})
    try:
        replayed = second.wait(_for(gen_b, "media_generation_completed"))
        assert replayed["data"]["status"] == "succeeded"
        assert not any(e["data"].get("generation_id") == gen_a for e in second.events)
    finally:
        second.close()


def test_cancel_processing_job_stops_and_keeps_nothing(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    stream = StreamReader(server)
    try:
        gen_id = api.post("/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "stop me"}).json()[
            "generations"][0]["generation_id"]
        stream.wait(lambda e: _for(gen_id, "media_generation_progress")(e) and e["data"]["step"] >= 2)
        r = api.delete(f"/api/ai/queue/{gen_id}")
        assert r.status_code == 200, r.text
        stream.wait(_for(gen_id, "media_generation_cancelled"))
        row = api.get(f"/api/ai/queue/{gen_id}").json()
        assert row["status"] == "cancelled" and row["result_url"] is None
        # the worker stops at its next step: progress events end within a step or two
        time.sleep(1.0)
        steps = [e["data"]["step"] for e in stream.events if _for(gen_id, "media_generation_progress")(e)]
        assert max(steps) < 40
        # a later job runs: the worker was freed
        next_id = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "after"}).json()[
            "generations"][0]["generation_id"]
        stream.wait(_for(next_id, "media_generation_completed"))
        assert not any(_for(gen_id, "media_generation_completed")(e) for e in stream.events)
        assert not (server.data_dir / "files" / gen_id).exists()
    finally:
        stream.close()


def test_revoking_a_key_ends_its_open_streams(server) -> None:  # type: ignore[no-untyped-def]
    """A stream opened with a key stops within a second or two of the key's revocation, idle or
    not, and opening it again is 401: a revoked key hears no more events (and no image links)."""
    key = server.cli("keys", "create", "--name", "streamer").stdout.strip()
    reader = StreamReader(server, {"Authorization": f"Bearer {key}"})
    try:
        with server.client(key) as client:
            (gen_id,) = [g["generation_id"] for g in client.post(
                "/api/ai/queue", json={"model": "tiny-sd", "prompt": "x"}).json()["generations"]]
            reader.wait(_for(gen_id, "media_generation_completed"))
            server.cli("keys", "revoke", key[:10])
            revoked = time.monotonic()
            reader._thread.join(10)
            assert not reader._thread.is_alive(), "the stream went on after the revocation"
            assert time.monotonic() - revoked < 5
            again = client.get("/api/events")
            assert again.status_code == 401 and "revoked" in again.json()["error"]["detail"]
    finally:
        reader.close()


def test_a_server_without_workers_streams_the_queue_s_events_from_its_rows(
        server: ServerProcess) -> None:
    """An API-only node on the server's data dir: its queued jobs run in the server, and its own
    stream still says when each started and how it ended (one event each, cancels included)."""
    node = ServerProcess(server.data_dir, {"IMAGEHUB_RUN_WORKERS": "false"}).start()
    stream = StreamReader(node)
    try:
        with node.client() as front:
            done = [g["generation_id"] for g in front.post("/api/ai/queue", json={
                "model": "tiny-sd", "prompt": "relayed", "num_generations": 2}).json()["generations"]]
            slow = front.post("/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "stop it"}
                              ).json()["generations"][0]["generation_id"]
            completed = [stream.wait(_for(i, "media_generation_completed")) for i in done]
            images = [front.get(e["data"]["url"]).content for e in completed]  # the node's links
            stream.wait(_for(slow, "media_generation_started"))
            assert front.delete(f"/api/ai/queue/{slow}").status_code == 200
            stream.wait(_for(slow, "media_generation_cancelled"))
            time.sleep(1.5)  # a few more polls: nothing is published twice
    finally:
        stream.close()
        node.stop()

    assert [e["data"]["status"] for e in completed] == ["succeeded"] * 2
    assert [image[:4] for image in images] == [b"\x89PNG"] * 2  # signed links that open
    mine = [(e["event"], e["data"]["generation_id"]) for e in stream.events
            if e["data"].get("generation_id") in done + [slow]]
    assert sorted(mine) == sorted([("media_generation_started", i) for i in done + [slow]]
                                  + [("media_generation_completed", i) for i in done]
                                  + [("media_generation_cancelled", slow)])
