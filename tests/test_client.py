"""``imagehub.Client`` and ``AsyncClient`` against the real server on loopback."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ServerProcess
from PIL import Image

from imagehub import AsyncClient, Client
from imagehub.client import (
    APIError,
    Event,
    GenerationCancelled,
    GenerationCompleted,
    GenerationProgress,
    GenerationStarted,
    SSEDecoder,
    StreamConnected,
    StreamError,
)


@pytest.fixture
def hub(server: ServerProcess):  # type: ignore[no-untyped-def]
    with Client(server.url, api_key=server.key) as client:
        yield client


def test_sse_decoder_follows_the_format() -> None:
    decoder = SSEDecoder()
    lines = [": keep-alive", "id: b-1", "event: media_generation_progress",
             'data: {"generation_id":"g","step":1,"total_steps":2}', "",
             "retry: 2500", "event: something_new", "data: {\"a\":", "data: 1}", "",
             "data: not json", ""]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert isinstance(events[0], GenerationProgress)
    assert (events[0].id, events[0].generation_id, events[0].step, events[0].total_steps) == \
        ("b-1", "g", 1, 2)
    assert type(events[1]) is Event and events[1].event == "something_new"
    assert events[1].data == {"a": 1} and events[1].id == "b-1"  # the last id carries over
    assert events[2].event == "message" and events[2].data == {"text": "not json"}
    assert decoder.retry == 2.5 and decoder.headers()["Last-Event-ID"] == "b-1"


def test_generate_models_and_download(hub: Client) -> None:
    ids = [m["id"] for m in hub.models()]
    assert {"tiny-sd", "tiny-sd-slow"} <= set(ids)
    schema = hub.model("tiny-sd")["request_schema"]
    assert "prompt" in schema["properties"] and schema["required"] == ["prompt"]
    result = hub.generate("tiny-sd", "a red circle", seed=3, aspect_ratio="16:9")
    (image,) = result["images"]
    png = hub.download(image["url"])
    assert Image.open(io.BytesIO(png)).size == (image["width"], image["height"]) == (688, 384)
    again = hub.generate("tiny-sd", "a red circle", seed=3, aspect_ratio="16:9")
    assert hub.download(again["images"][0]["url"]) == png


def test_edit_takes_a_path_bytes_or_a_pil_image(hub: Client, tmp_path: Path) -> None:
    """Each is sent as a data URI; with strength 0 the image that comes back is the input."""
    source = Image.new("RGB", (512, 512), (200, 40, 40))
    source.paste((20, 20, 220), (0, 0, 256, 512))
    source.save(tmp_path / "in.png")
    expected = np.asarray(source, np.int16)
    for given in (tmp_path / "in.png", (tmp_path / "in.png").read_bytes(), source):
        result = hub.edit("tiny-sd", "keep it", given, strength=0, seed=2)
        out = np.asarray(Image.open(io.BytesIO(hub.download(result["image_url"]))), np.int16)
        assert out.shape == expected.shape and np.abs(out - expected).max() <= 8, type(given)
    (queued,) = hub.enqueue("tiny-sd", "keep it, queued", input_image=source, strength=0)
    assert hub.wait(queued, timeout=60)["input_image"].startswith("data:image/png;base64,...(")


def test_a_bad_input_image_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with Client(f"http://127.0.0.1:{_closed_port()}") as nowhere:  # a request would fail otherwise
        with pytest.raises(ValueError, match=r"input_image: '.*notes.txt' is not a readable image"):
            nowhere.edit("m", "x", tmp_path / "notes.txt")
        with pytest.raises(ValueError, match=r"input_image: \(3 bytes\) is not a readable image"):
            nowhere.enqueue("m", "x", input_image=["https://example.com/a.png", b"abc"])
        with pytest.raises(TypeError, match="not int"):
            nowhere.edit("m", "x", 7)
        with pytest.raises(FileNotFoundError):
            nowhere.edit("m", "x", tmp_path / "missing.png")


def test_enqueue_events_get_list_history(hub: Client) -> None:
    ids = hub.enqueue("tiny-sd", "a blue square", num_generations=2, seed=5)
    assert len(ids) == 2
    seen: dict[str, list[Event]] = {i: [] for i in ids}
    done: set[str] = set()
    for event in hub.events(max_reconnects=0):
        if event.generation_id in seen:
            seen[event.generation_id].append(event)
        if isinstance(event, GenerationCompleted) and event.generation_id in seen:
            assert event.succeeded and event.url and event.error is None
            done.add(event.generation_id)
            if done == set(ids):
                break
    for events in seen.values():
        assert isinstance(events[0], GenerationStarted)
        steps = [e.step for e in events if isinstance(e, GenerationProgress)]
        assert steps == [1, 2] and all(e.total_steps == 2 for e in events
                                       if isinstance(e, GenerationProgress))
    rows = [hub.wait(i, timeout=60) for i in ids]
    assert all(r["status"] == "succeeded" and r["result_url"] for r in rows)
    assert [r["seed"] for r in rows] == [5, 6]
    assert hub.get(ids[0])["prompt"] == "a blue square"
    assert all(r["generation_id"] not in ids for r in hub.list())  # ended rows leave the queue
    assert {r["generation_id"] for r in hub.list(status="succeeded")} >= set(ids)
    page = hub.history(page_size=5, model="tiny-sd")
    assert page["page_size"] == 5 and page["total_entries"] >= 2


def test_cancel_and_errors(hub: Client, server: ServerProcess) -> None:
    (gen_id,) = hub.enqueue("tiny-sd-slow", "a slow green cube")
    events = hub.events(max_reconnects=0)
    for event in events:
        if isinstance(event, GenerationProgress) and event.generation_id == gen_id:
            break
    assert hub.cancel(gen_id) == {"status": "success", "generation_id": gen_id}
    for event in events:
        if event.generation_id == gen_id:
            assert isinstance(event, GenerationCancelled)
            break
    events.close()
    with pytest.raises(APIError) as ended:
        hub.cancel(gen_id)
    assert ended.value.status_code == 409 and ended.value.type == "invalid_state"
    with pytest.raises(APIError) as missing:
        hub.model("no-such-model")
    assert missing.value.status_code == 404 and missing.value.detail == "Model not found: no-such-model"
    assert missing.value.request_id
    with pytest.raises(APIError) as bad:
        hub.generate("tiny-sd", "x", aspect_ratio="7:3")
    assert bad.value.type == "invalid_params" and "aspect_ratio: '7:3'" in bad.value.detail
    with Client(server.url, api_key="wrong") as stranger, pytest.raises(APIError) as denied:
        next(stranger.events())
    assert denied.value.status_code == 401


class DroppingProxy:
    """A TCP proxy that cuts its first connection once a completed event went through, and
    records each request's head, to see the client reconnect with ``Last-Event-ID``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream, len(self.requests) == 0),
                             daemon=True).start()
            time.sleep(0.05)

    def _serve(self, downstream: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        head = downstream.recv(65536)
        self.requests.append(head)
        upstream.sendall(head)
        seen = b""
        try:
            while chunk := upstream.recv(65536):
                downstream.sendall(chunk)
                seen = (seen + chunk)[-100_000:]
                marker = seen.find(b"event: media_generation_completed")
                if cut and marker >= 0 and b"\n\n" in seen[marker:]:
                    break
        except OSError:
            pass
        for sock in (upstream, downstream):
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_events_reconnect_with_last_event_id(hub: Client, server: ServerProcess) -> None:
    """The proxy cuts the stream after the first completed event (maybe a catch-up one); the
    client reconnects with the id of the last event it got, and misses and repeats nothing."""
    proxy = DroppingProxy(server.port)
    got: list[Event] = []
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=server.key) as via_proxy:
            (first,) = hub.enqueue("tiny-sd", "first")
            second = None
            stream = via_proxy.events(retry_delay=0.1, max_reconnects=3)
            for event in stream:
                got.append(event)
                if isinstance(event, GenerationCompleted) and event.generation_id == first:
                    (second,) = hub.enqueue("tiny-sd", "second")
                if isinstance(event, GenerationCompleted) and event.generation_id == second:
                    break
            stream.close()
    finally:
        proxy.close()
    assert len(proxy.requests) == 2
    assert _header(proxy.requests[0], "last-event-id") is None
    resumed_from = _header(proxy.requests[1], "last-event-id")
    ids = [e.id for e in got]
    assert resumed_from in ids and len(ids) == len(set(ids))
    seqs = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert seqs[ids.index(resumed_from) + 1:] == sorted(seqs[ids.index(resumed_from) + 1:])
    for gen_id in (first, second):
        ends = [e for e in got if isinstance(e, GenerationCompleted) and e.generation_id == gen_id]
        assert len(ends) == 1 and ends[0].succeeded


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode().split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def test_events_gives_up_after_max_reconnects() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with Client(f"http://127.0.0.1:{port}") as nowhere, pytest.raises(StreamError):
        next(nowhere.events(max_reconnects=1, retry_delay=0.01))


def test_download_of_a_bad_link_raises_api_error(hub: Client, server: ServerProcess) -> None:
    with pytest.raises(APIError) as forged:
        hub.download(f"{server.url}/api/files/forged-token/0.png")
    assert forged.value.status_code == 404 and forged.value.type == "resource_not_found"
    assert "link expired" in forged.value.detail and forged.value.request_id


def test_no_server_raises_httpx_transport_errors_as_documented() -> None:
    with Client(f"http://127.0.0.1:{_closed_port()}") as nowhere:
        with pytest.raises(httpx.ConnectError):
            nowhere.models()
        with pytest.raises(httpx.ConnectError):
            nowhere.download(f"{nowhere.base_url}/api/files/t/0.png")


class AnsweringServer:
    """A TCP server that answers every connection with ``answer`` (nothing: it just closes) and
    records when each came."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.times: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.times.append(time.monotonic())
            if self.answer:
                conn.recv(65536)
                conn.sendall(self.answer)
            conn.close()

    def close(self) -> None:
        self.listener.close()


def test_events_back_off_then_give_up_after_max_downtime() -> None:
    closing = AnsweringServer()
    started = time.monotonic()
    try:
        with Client(closing.url) as client, pytest.raises(StreamError, match="could not reopen the stream for 1 s"):
            next(client.events(retry_delay=0.05, max_retry_delay=0.2, max_downtime=1.0))
    finally:
        closing.close()
    assert 1.0 <= time.monotonic() - started < 5
    gaps = [b - a for a, b in zip(closing.times, closing.times[1:])]
    assert 5 <= len(closing.times) <= 10  # 0.05, 0.1, 0.2, 0.2...: not 20 tries at 0.05 s
    assert min(gaps[2:-1]) >= 0.18


def test_events_retry_a_proxy_that_answers_503() -> None:
    proxy = AnsweringServer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
    try:
        with Client(proxy.url) as client, pytest.raises(StreamError) as gave_up:
            next(client.events(retry_delay=0.05, max_downtime=0.5))
    finally:
        proxy.close()
    assert len(proxy.times) >= 3
    assert isinstance(gave_up.value.__cause__, APIError) and gave_up.value.__cause__.status_code == 503


def test_events_announce_each_stream_they_open(hub: Client, server: ServerProcess) -> None:
    proxy = DroppingProxy(server.port)
    got: list[Event] = []
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=server.key) as via_proxy:
            stream = via_proxy.events(retry_delay=0.1, announce_connects=True)
            got.append(next(stream))
            hub.enqueue("tiny-sd", "a cut")  # its completed event makes the proxy cut the stream
            for event in stream:
                got.append(event)
                if isinstance(event, StreamConnected):
                    break
            stream.close()
    finally:
        proxy.close()
    assert isinstance(got[0], StreamConnected) and got[0].id is None
    assert [type(e) for e in got].count(StreamConnected) == 2 == len(proxy.requests)
    assert any(isinstance(e, GenerationCompleted) for e in got[1:-1])
    assert got[-1].id == got[-2].id  # the stream it opened resumes after the last event seen


def _closed_port() -> int:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    return port


def test_async_client(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, api_key=server.key) as hub:
            assert "tiny-sd" in [m["id"] for m in await hub.models()]
            result = await hub.generate("tiny-sd", "an async circle", seed=9)
            assert (await hub.download(result["images"][0]["url"]))[:4] == b"\x89PNG"
            (gen_id,) = await hub.enqueue("tiny-sd", "an async square")
            async for event in hub.events(max_reconnects=0):
                if isinstance(event, GenerationCompleted) and event.generation_id == gen_id:
                    break
            row = await hub.wait(gen_id, timeout=30)
            assert row["status"] == "succeeded"
            assert gen_id in [r["generation_id"] for r in await hub.list(status="succeeded")]
            with pytest.raises(APIError) as ended:
                await hub.cancel(gen_id)
            assert ended.value.status_code == 409
            with pytest.raises(APIError) as forged:
                await hub.download(f"{server.url}/api/files/forged-token/0.png")
            assert forged.value.status_code == 404
        async with AsyncClient(f"http://127.0.0.1:{_closed_port()}") as nowhere:
            with pytest.raises(StreamError, match="could not reopen the stream"):
                async for _ in nowhere.events(retry_delay=0.05, max_downtime=0.3):
                    pass
    asyncio.run(scenario())


@pytest.mark.parametrize("page,block", [("python-client.md", 1), ("api-openai-images.md", 0)])
def test_the_other_documented_snippets_run_as_written(server: ServerProcess, tmp_path: Path,
                                                     page: str, block: int) -> None:
    """As a script, only the host and model changed: imports included, no top-level await."""
    text = resources.files("imagehub.docs").joinpath(page).read_text()
    code = text.split("```python\n")[block + 1].split("```", 1)[0]
    code = code.replace("http://127.0.0.1:8000", server.url).replace("imagehub-tiny", "tiny-sd")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, check=False,
                          env={**os.environ, "IMAGEHUB_API_KEY": server.key})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{server.url}/api/files/"), done.stdout


def test_the_documented_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    """The first example of docs/python-client.md, with only the host and model changed."""
    page = resources.files("imagehub.docs").joinpath("python-client.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("http://127.0.0.1:8000", server.url).replace("imagehub-tiny", "tiny-sd")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, check=False,
                          env={**os.environ, "IMAGEHUB_API_KEY": server.key})
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "circle.png").size == (688, 384)
    assert done.stdout.count(" succeeded http") == 2 and "tiny-sd" in done.stdout
