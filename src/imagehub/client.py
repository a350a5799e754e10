"""The Python client: ``Client`` and ``AsyncClient`` over httpx.

Both speak the HTTP API of ``../shared/API.md``, so they work against an imagehub server or against
hub.oxen.ai, a base URL away::

    from imagehub import Client

    with Client("http://127.0.0.1:8000", api_key=os.environ["IMAGEHUB_API_KEY"]) as hub:
        image_url = hub.generate("tiny-sd", "a red circle", seed=7)["images"][0]["url"]
        (gen_id,) = hub.enqueue("tiny-sd", "a blue square")
        for event in hub.events():
            if isinstance(event, GenerationCompleted) and event.generation_id == gen_id:
                break

Resources come back as the JSON objects API.md shows (``dict``); events come back typed.
``events()`` reconnects when the stream drops and sends ``Last-Event-ID``, so nothing is missed
that the server's replay buffer still holds.

Failures: an error answer of the API raises :class:`APIError` (``download()`` included); a server
that cannot be reached, or answers too slowly, raises httpx's own ``httpx.TransportError``
subclasses (``ConnectError``, ``ReadTimeout``...), unwrapped; ``events()`` raises
:class:`StreamError` once it gives up reconnecting; ``wait()`` raises ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Self

import httpx

from imagehub.errors import ImagehubError
from imagehub.storage.images import image_type

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
EVENTS_IDLE_TIMEOUT = 60.0
"""A stream silent this long (the server sends ``: keep-alive`` every 15 s) is treated as dropped."""
ENDED = frozenset({"succeeded", "failed", "cancelled"})
RETRIED_STATUSES = frozenset({502, 503, 504})
"""Answers of a proxy in front of a server that is restarting: ``events()`` retries them."""


# ---- errors -------------------------------------------------------------------------------------

class APIError(Exception):
    """An error answer of the API (API.md section 1): HTTP status, stable ``type`` and ``detail``."""

    def __init__(self, status_code: int, type: str, title: str, detail: str,
                 request_id: str | None = None) -> None:
        super().__init__(f"{status_code} {type}: {detail}")
        self.status_code, self.type, self.title, self.detail = status_code, type, title, detail
        self.request_id = request_id

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {"detail": str(error)}
        return cls(response.status_code, str(error.get("type", "http_error")),
                   str(error.get("title", response.reason_phrase)),
                   str(error.get("detail") or error.get("message") or response.text[:300]),
                   response.headers.get("x-request-id"))


class StreamError(Exception):
    """``events()`` gave up: more drops in a row than ``max_reconnects``, or a stream down for
    longer than ``max_downtime``."""


# ---- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """One Server-Sent Event. Names this client does not know come back as plain ``Event``."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def generation_id(self) -> str | None:
        return self.data.get("generation_id")

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    @property
    def model(self) -> str | None:
        return self.data.get("model")


class GenerationStarted(Event):
    """``media_generation_started``: a worker picked the generation up."""


class GenerationProgress(Event):
    """``media_generation_progress``: one denoising step done."""

    @property
    def step(self) -> int:
        return int(self.data.get("step", 0))

    @property
    def total_steps(self) -> int:
        return int(self.data.get("total_steps", 0))


class GenerationCompleted(Event):
    """``media_generation_completed``: ``succeeded`` (with ``url``) or ``failed`` (with ``error``)."""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def url(self) -> str | None:
        return self.data.get("url")

    @property
    def error(self) -> str | None:
        return self.data.get("error")


class GenerationCancelled(Event):
    """``media_generation_cancelled``."""


class StreamConnected(Event):
    """Not a server event: what ``events(announce_connects=True)`` yields each time a stream
    opens, before that stream's events. Events older than the server's replay buffer (or from
    before a server restart) are not sent again, so this is when to re-read the rows you wait for."""


EVENT_TYPES: dict[str, type[Event]] = {
    "media_generation_started": GenerationStarted,
    "media_generation_progress": GenerationProgress,
    "media_generation_completed": GenerationCompleted,
    "media_generation_cancelled": GenerationCancelled,
}


class SSEDecoder:
    """Server-Sent Events, line by line (the WHATWG algorithm, less what imagehub never sends).

    Remembers the last event id, for the ``Last-Event-ID`` of the next connection.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry: float | None = None
        self._name: str = ""
        self._data: list[str] = []
        self._id: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def feed(self, line: str) -> Event | None:
        """One line without its ending; an event when ``line`` is the blank line that ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def _dispatch(self) -> Event | None:
        name, data, event_id = self._name or "message", self._data, self._id
        self._name, self._data, self._id = "", [], None
        if event_id is not None:
            self.last_event_id = event_id
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            payload = {"text": text}
        if not isinstance(payload, dict):
            payload = {"value": payload}
        return EVENT_TYPES.get(name, Event)(event=name, data=payload, id=event_id or self.last_event_id)


# ---- the requests both clients make -------------------------------------------------------------

class _Call(NamedTuple):
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    unwrap: Callable[[Any], Any] = lambda body: body


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def image_ref(image: Any, field: str = "input_image") -> str:
    """An input image as the API takes it: a ``str`` (an ``https://`` URL or a ``data:`` URI) as
    given; a path (``pathlib.Path``), ``bytes`` or a PIL image as a ``data:`` URI. ValueError
    naming ``field``, before anything is sent, when the file or bytes are not a PNG/JPEG/WebP/
    GIF/BMP image."""
    if isinstance(image, str):
        return image
    if isinstance(image, os.PathLike):
        data, shown = Path(image).read_bytes(), repr(os.fspath(image))
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data, shown = bytes(image), f"({len(image)} bytes)"
    elif callable(getattr(image, "save", None)):  # a PIL image
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, shown = buffer.getvalue(), "(a PIL image)"
    else:
        raise TypeError(f"{field}: expected a URL or data URI (str), a path, bytes or a PIL "
                        f"image, not {type(image).__name__}")
    try:
        kind = image_type(field, shown, data)
    except ImagehubError as exc:
        raise ValueError(exc.detail) from None
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    """The request's fields: None values left out, input images as the API takes them."""
    fields = _without_none(params)
    images = fields.get("input_image")
    if images is not None:
        fields["input_image"] = ([image_ref(i) for i in images] if isinstance(images, (list, tuple))
                                 else image_ref(images))
    return fields


def _generate(path: str, model: str, prompt: str, params: dict[str, Any]) -> _Call:
    return _Call("POST", path, json={"model": model, "prompt": prompt, **_fields(params)})


def _enqueue(model: str, prompt: str, num_generations: int, idempotency_key: str | None,
             params: dict[str, Any]) -> _Call:
    body = {"model": model, "prompt": prompt, "num_generations": num_generations,
            **_fields(params)}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return _Call("POST", "/api/ai/queue", json=body, headers=headers,
                 unwrap=lambda r: [g["generation_id"] for g in r["generations"]])


def _list(status: str | None, model: str | None, media_type: str | None) -> _Call:
    return _Call("GET", "/api/ai/queue",
                 params=_without_none({"status": status, "model": model, "media_type": media_type}),
                 unwrap=lambda r: r["generations"])


def _history(page: int, page_size: int, status: str | None, model: str | None) -> _Call:
    return _Call("GET", "/api/ai/generations", params=_without_none(
        {"page": page, "page_size": page_size, "status": status, "model": model}))


def _models(modalities: str | None) -> _Call:
    return _Call("GET", "/api/ai/models", params=_without_none({"modalities": modalities}),
                 unwrap=lambda r: r["data"])


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise APIError.from_response(response)
    return response.json()


class _Base:
    def __init__(self, base_url: str, api_key: str | None, headers: dict[str, str] | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._headers = {"User-Agent": "imagehub-client", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @staticmethod
    def _stream_timeout(idle: float) -> httpx.Timeout:
        return httpx.Timeout(connect=10.0, read=idle, write=10.0, pool=10.0)


# ---- Client -------------------------------------------------------------------------------------

class Client(_Base):
    """A blocking client. ``base_url`` is the server's root (``https://hub.oxen.ai`` works too)."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 headers: dict[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, headers)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> Any:
        response = self._http.request(call.method, call.path, json=call.json, params=call.params,
                                      headers=call.headers)
        return call.unwrap(_checked(response))

    def generate(self, model: str, prompt: str, **params: Any) -> dict[str, Any]:
        """``POST /api/ai/images/generate``: blocks until the images exist (``n``,
        ``response_format``, ``seed`` and the model's own fields go in ``params``)."""
        return self._send(_generate("/api/ai/images/generate", model, prompt, params))

    def edit(self, model: str, prompt: str, input_image: Any, **params: Any) -> dict[str, Any]:
        """``POST /api/ai/images/edit``: ``input_image`` is one image or a list (for models whose
        ``request_schema`` takes several), each an ``https://`` URL, a ``data:`` URI, a path,
        ``bytes`` or a PIL image (see :func:`image_ref`)."""
        return self._send(_generate("/api/ai/images/edit", model, prompt,
                                    {"input_image": input_image, **params}))

    def enqueue(self, model: str, prompt: str, *, num_generations: int = 1,
                idempotency_key: str | None = None, **params: Any) -> list[str]:
        """``POST /api/ai/queue``: the new generation ids."""
        return self._send(_enqueue(model, prompt, num_generations, idempotency_key, params))

    def get(self, generation_id: str) -> dict[str, Any]:
        """``GET /api/ai/queue/{id}``: one generation row."""
        return self._send(_Call("GET", f"/api/ai/queue/{generation_id}"))

    def cancel(self, generation_id: str) -> dict[str, Any]:
        """``DELETE /api/ai/queue/{id}``; APIError 409 when it already ended."""
        return self._send(_Call("DELETE", f"/api/ai/queue/{generation_id}"))

    def list(self, *, status: str | None = None, model: str | None = None,
             media_type: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/ai/queue``: queued and processing rows, or those of ``status``."""
        return self._send(_list(status, model, media_type))

    def history(self, *, page: int = 1, page_size: int = 50, status: str | None = None,
                model: str | None = None) -> dict[str, Any]:
        """``GET /api/ai/generations``: one page of past generations."""
        return self._send(_history(page, page_size, status, model))

    def models(self, *, modalities: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/ai/models``: every model object."""
        return self._send(_models(modalities))

    def model(self, model_id: str) -> dict[str, Any]:
        """``GET /api/ai/models/{id}``: one model, with its ``request_schema``."""
        return self._send(_Call("GET", f"/api/ai/models/{model_id}"))

    def wait(self, generation_id: str, *, timeout: float | None = None,
             poll_interval: float = 0.5) -> dict[str, Any]:
        """Poll a generation until it ends (succeeded, failed or cancelled); its last row."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            row = self.get(generation_id)
            if row["status"] in ENDED:
                return row
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation {generation_id} still {row['status']} after {timeout} s")
            time.sleep(poll_interval)

    def download(self, url: str) -> bytes:
        """The bytes of a signed image URL (no key needed, none sent to another host)."""
        response = httpx.get(url, timeout=self._http.timeout) if not url.startswith(self.base_url) \
            else self._http.get(url)
        if response.is_error:
            raise APIError.from_response(response)
        return response.content

    def events(self, *, last_event_id: str | None = None, reconnect: bool = True,
               max_reconnects: int | None = None, retry_delay: float = 1.0,
               max_retry_delay: float | None = None, max_downtime: float | None = None,
               idle_timeout: float = EVENTS_IDLE_TIMEOUT,
               announce_connects: bool = False) -> Iterator[Event]:
        """``GET /api/events`` as typed events, forever; on a drop, reconnect with ``Last-Event-ID``.

        Each drop in a row doubles the wait from ``retry_delay`` (or the server's ``retry:``) up to
        ``max_retry_delay`` (None: no growth). ``StreamError`` once there were more than
        ``max_reconnects`` drops in a row, or the stream could not be reopened for
        ``max_downtime`` seconds (None: no bound). API errors (401...) are raised, not retried,
        except 502, 503 and 504. ``announce_connects``: yield :class:`StreamConnected` each time
        a stream opens.
        """
        decoder = SSEDecoder(last_event_id)
        retries = _Retries(max_reconnects, retry_delay, max_retry_delay, max_downtime)
        while True:
            try:
                with self._http.stream("GET", "/api/events", headers=decoder.headers(),
                                       timeout=self._stream_timeout(idle_timeout)) as response:
                    if response.is_error:
                        response.read()
                        raise APIError.from_response(response)
                    retries.connected()
                    if announce_connects:
                        yield StreamConnected("stream_connected", id=decoder.last_event_id)
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is not None:
                            retries.got_event()
                            yield event
            except (httpx.TransportError, APIError) as exc:
                if not reconnect or not _retried(exc):
                    raise
                cause: Exception = exc
            else:
                if not reconnect:
                    return
                cause = StreamError("the server closed the event stream")
            time.sleep(retries.dropped(cause, decoder.retry))


def _retried(exc: Exception) -> bool:
    return not isinstance(exc, APIError) or exc.status_code in RETRIED_STATUSES


@dataclass
class _Retries:
    """When ``events()`` tries the stream again, and when it gives up (both clients)."""

    max_reconnects: int | None
    retry_delay: float
    max_retry_delay: float | None
    max_downtime: float | None
    drops: int = 0
    """Drops since the last event."""
    down_since: float | None = None
    """When the stream was last lost; None while one is open."""

    def connected(self) -> None:
        self.down_since = None

    def got_event(self) -> None:
        self.drops = 0

    def dropped(self, cause: Exception, server_retry: float | None) -> float:
        """The seconds to wait before the next try; StreamError when there is none."""
        self.drops += 1
        now = time.monotonic()
        self.down_since = now if self.down_since is None else self.down_since
        down = now - self.down_since
        if self.max_reconnects is not None and self.drops > self.max_reconnects:
            raise StreamError(f"event stream dropped {self.drops} times in a row "
                              f"({_describe(cause)})") from cause
        if self.max_downtime is not None and down >= self.max_downtime:
            raise StreamError(f"could not reopen the stream for {down:.0f} s "
                              f"({_describe(cause)})") from cause
        base = server_retry or self.retry_delay
        delay = base  # doubled per drop in a row, up to max_retry_delay, where one is set
        if self.max_retry_delay is not None:
            delay = min(base * 2 ** min(self.drops - 1, 30), max(base, self.max_retry_delay))
        return delay if self.max_downtime is None else min(delay, self.max_downtime - down)


def _describe(cause: Exception) -> str:
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


# ---- AsyncClient --------------------------------------------------------------------------------

class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: the same methods, awaited."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 headers: dict[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, headers)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers,
                                       timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        response = await self._http.request(call.method, call.path, json=call.json,
                                            params=call.params, headers=call.headers)
        return call.unwrap(_checked(response))

    async def generate(self, model: str, prompt: str, **params: Any) -> dict[str, Any]:
        return await self._send(_generate("/api/ai/images/generate", model, prompt, params))

    async def edit(self, model: str, prompt: str, input_image: Any,
                   **params: Any) -> dict[str, Any]:
        return await self._send(_generate("/api/ai/images/edit", model, prompt,
                                          {"input_image": input_image, **params}))

    async def enqueue(self, model: str, prompt: str, *, num_generations: int = 1,
                      idempotency_key: str | None = None, **params: Any) -> list[str]:
        return await self._send(_enqueue(model, prompt, num_generations, idempotency_key, params))

    async def get(self, generation_id: str) -> dict[str, Any]:
        return await self._send(_Call("GET", f"/api/ai/queue/{generation_id}"))

    async def cancel(self, generation_id: str) -> dict[str, Any]:
        return await self._send(_Call("DELETE", f"/api/ai/queue/{generation_id}"))

    async def list(self, *, status: str | None = None, model: str | None = None,
                   media_type: str | None = None) -> list[dict[str, Any]]:
        return await self._send(_list(status, model, media_type))

    async def history(self, *, page: int = 1, page_size: int = 50, status: str | None = None,
                      model: str | None = None) -> dict[str, Any]:
        return await self._send(_history(page, page_size, status, model))

    async def models(self, *, modalities: str | None = None) -> list[dict[str, Any]]:
        return await self._send(_models(modalities))

    async def model(self, model_id: str) -> dict[str, Any]:
        return await self._send(_Call("GET", f"/api/ai/models/{model_id}"))

    async def wait(self, generation_id: str, *, timeout: float | None = None,
                   poll_interval: float = 0.5) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            row = await self.get(generation_id)
            if row["status"] in ENDED:
                return row
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation {generation_id} still {row['status']} after {timeout} s")
            await asyncio.sleep(poll_interval)

    async def download(self, url: str) -> bytes:
        if url.startswith(self.base_url):
            response = await self._http.get(url)
        else:
            async with httpx.AsyncClient(timeout=self._http.timeout) as plain:
                response = await plain.get(url)
        if response.is_error:
            raise APIError.from_response(response)
        return response.content

    async def events(self, *, last_event_id: str | None = None, reconnect: bool = True,
                     max_reconnects: int | None = None, retry_delay: float = 1.0,
                     max_retry_delay: float | None = None, max_downtime: float | None = None,
                     idle_timeout: float = EVENTS_IDLE_TIMEOUT,
                     announce_connects: bool = False) -> AsyncIterator[Event]:
        decoder = SSEDecoder(last_event_id)
        retries = _Retries(max_reconnects, retry_delay, max_retry_delay, max_downtime)
        while True:
            try:
                async with self._http.stream("GET", "/api/events", headers=decoder.headers(),
                                             timeout=self._stream_timeout(idle_timeout)) as response:
                    if response.is_error:
                        await response.aread()
                        raise APIError.from_response(response)
                    retries.connected()
                    if announce_connects:
                        yield StreamConnected("stream_connected", id=decoder.last_event_id)
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is not None:
                            retries.got_event()
                            yield event
            except (httpx.TransportError, APIError) as exc:
                if not reconnect or not _retried(exc):
                    raise
                cause: Exception = exc
            else:
                if not reconnect:
                    return
                cause = StreamError("the server closed the event stream")
            await asyncio.sleep(retries.dropped(cause, decoder.retry))


__all__ = [
    "APIError", "AsyncClient", "Client", "Event", "GenerationCancelled", "GenerationCompleted",
    "GenerationProgress", "GenerationStarted", "SSEDecoder", "StreamConnected", "StreamError",
]
