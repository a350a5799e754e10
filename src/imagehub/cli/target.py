"""Where the CLI's commands go: a running server (``IMAGEHUB_URL`` + ``IMAGEHUB_API_KEY``, through
:class:`imagehub.Client`), or, when no URL is configured, a hub opened in this process over the
local data dir (``IMAGEHUB_DATA_DIR``). Both answer with the same JSON shapes and typed events.

Errors of either kind become one ``error: ...`` line and exit status 1 (:func:`one_line_errors`).
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import httpx
import typer

from imagehub.client import EVENT_TYPES, APIError, Client, Event, StreamConnected, StreamError
from imagehub.errors import ImagehubError

if TYPE_CHECKING:
    from imagehub.services.hub import Hub

URL_OPTION = typer.Option(None, "--url", envvar="IMAGEHUB_URL", show_envvar=True,
                          help="Server to talk to; unset: run in this process over the local data dir.")
KEY_OPTION = typer.Option(None, "--api-key", envvar="IMAGEHUB_API_KEY", show_envvar=True,
                          help="API key for --url.", show_default=False)
MAX_DOWNTIME_SECONDS = 60.0
"""How long the CLI keeps trying to reopen a server's event stream (a restart takes seconds)."""
MAX_RETRY_DELAY_SECONDS = 5.0
DOWNTIME_OPTION = typer.Option(MAX_DOWNTIME_SECONDS, "--max-downtime", min=0, metavar="SECONDS",
                               help="How long the server may stay unreachable before giving up.")


class Target(Protocol):
    """What the commands need; ``Client`` has all of it, ``LocalHub`` mirrors it."""

    runs_jobs_here: bool
    """Whether this process runs the generations (the local hub) or a server does."""

    def models(self) -> list[dict[str, Any]]: ...
    def model(self, model_id: str) -> dict[str, Any]: ...
    def enqueue(self, model: str, prompt: str, *, num_generations: int = 1,
                idempotency_key: str | None = None, **params: Any) -> list[str]: ...
    def get(self, generation_id: str) -> dict[str, Any]: ...
    def list(self, *, status: str | None = None, model: str | None = None) -> list[dict[str, Any]]: ...
    def cancel(self, generation_id: str) -> dict[str, Any]: ...
    def events(self, *, max_downtime: float = MAX_DOWNTIME_SECONDS) -> Iterator[Event]:
        """Typed events, a :class:`StreamConnected` first and after each reconnect."""
        ...
    def image_bytes(self, row: dict[str, Any]) -> list[bytes]: ...


class RemoteTarget(Client):
    """A :class:`Client` plus what the CLI needs on top: an event stream that outlives a server
    restart, then gives up, and says when it (re)opens."""

    runs_jobs_here = False

    def events(self, *, max_downtime: float = MAX_DOWNTIME_SECONDS,  # type: ignore[override]
               **kwargs: Any) -> Iterator[Event]:
        return super().events(max_downtime=max_downtime, max_retry_delay=MAX_RETRY_DELAY_SECONDS,
                              announce_connects=True, **kwargs)

    def image_bytes(self, row: dict[str, Any]) -> list[bytes]:
        urls = [image["url"] for image in row.get("images") or []] or [row["result_url"]]
        return [self.download(url) for url in urls]


class LocalHub:
    """The hub in this process: the local store, catalog and (for ``generate``) workers."""

    runs_jobs_here = True

    def __init__(self, run_workers: bool) -> None:
        from imagehub.config import load_settings
        from imagehub.services.hub import Hub
        from imagehub.services.keys import ANONYMOUS

        self.settings = load_settings()
        self.hub: Hub = Hub(self.settings)
        self.principal = ANONYMOUS
        self.hub.start(run_workers=run_workers)

    def close(self) -> None:
        self.hub.stop()

    def models(self) -> list[dict[str, Any]]:
        return [_model_dict(entry) for entry in self.hub.deps.catalog.all()]

    def model(self, model_id: str) -> dict[str, Any]:
        return _model_dict(self.hub.deps.catalog.get(model_id))

    def enqueue(self, model: str, prompt: str, *, num_generations: int = 1,
                idempotency_key: str | None = None, **params: Any) -> list[str]:
        body = {"model": model, "prompt": prompt, "num_generations": num_generations,
                **{k: v for k, v in params.items() if v is not None}}
        with deferred_interrupt() as made:  # rows committed, their ids lost: queued for good
            answer = self.hub.generations.enqueue(self.principal, body, idempotency_key)
            made.append([g.generation_id for g in answer.generations])
        return made[0]

    def get(self, generation_id: str) -> dict[str, Any]:
        return self.hub.generations.get(self.principal, generation_id).model_dump()

    def list(self, *, status: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        rows = self.hub.generations.list_active(self.principal, [status] if status else [], model,
                                                None, 1000)
        return [row.model_dump() for row in rows.generations]

    def cancel(self, generation_id: str) -> dict[str, Any]:
        return self.hub.generations.cancel(self.principal, generation_id).model_dump()

    def image_bytes(self, row: dict[str, Any]) -> list[bytes]:
        count = len(row.get("images") or []) or 1
        keys = [f"{row['generation_id']}/{index}.png" for index in range(count)]
        return [self.hub.deps.storage.get(key) or b"" for key in keys]

    def events(self, *, max_downtime: float = MAX_DOWNTIME_SECONDS) -> Iterator[Event]:
        """The bus's events as the client's typed events (the bus wants an event loop: a thread).

        In-process nothing drops: one :class:`StreamConnected` first, ``max_downtime`` unused."""
        events: queue.Queue[Any] = queue.Queue()
        ready, stop = threading.Event(), threading.Event()

        async def pump() -> None:
            subscription = self.hub.deps.bus.subscribe(self.principal.namespaces, None,
                                                       self.settings.event_catch_up_seconds)
            ready.set()
            try:
                while not stop.is_set():
                    event = await subscription.get(timeout=0.2)
                    if event is not None:
                        events.put(event)
            finally:
                subscription.close()

        threading.Thread(target=asyncio.run, args=(pump(),), daemon=True).start()
        ready.wait(10)
        try:
            yield StreamConnected("stream_connected")
            while True:
                event = events.get()
                name = event.name.value
                yield EVENT_TYPES.get(name, Event)(event=name, data=event.data, id=event.id)
        finally:
            stop.set()


def _model_dict(entry: Any) -> dict[str, Any]:
    card = entry.card
    return {"id": card.id, "display_name": card.display_name, "description": card.description,
            "backend": card.backend, "available": entry.available,
            "unavailable_reason": entry.unavailable_reason, "request_schema": entry.schema.document}


@contextmanager
def open_target(url: str | None, api_key: str | None, *, run_workers: bool = False) -> Iterator[Target]:
    """A client of ``url``, or the local hub when ``url`` is empty."""
    if url:
        with RemoteTarget(url, api_key=api_key) as client:
            yield client
        return
    local = LocalHub(run_workers=run_workers)
    try:
        yield local
    finally:
        local.close()


TARGET_ERRORS = (APIError, ImagehubError, httpx.HTTPError, StreamError)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C held back by :func:`deferred_interrupt`, carrying what the block made (``made``):
    raised where a return would have handed it back, so the caller still gets it."""

    def __init__(self, made: Any = None) -> None:
        super().__init__()
        self.made = made


@contextmanager
def deferred_interrupt() -> Iterator[list[Any]]:
    """Ctrl-C held back until the block ends, then raised as :class:`Interrupted` with what the
    block appended to the list it is given: for short local work whose result must not be lost
    halfway (rows committed, their ids not yet handed back). Outside the main thread, where
    Python takes no signal handler, the block runs as it is."""
    made: list[Any] = []
    if threading.current_thread() is not threading.main_thread():
        yield made
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield made
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise Interrupted(made[0] if made else None)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """API, hub and connection errors as one ``error: ...`` line on stderr, exit status 1."""
    try:
        yield
    except TARGET_ERRORS as exc:
        fail(error_text(exc), exc)


def error_text(exc: Exception) -> str:
    """What an ``error:`` line says about an API, hub, connection or stream error."""
    if isinstance(exc, APIError):
        return f"{exc.status_code} {exc.type}: {exc.detail}"
    if isinstance(exc, ImagehubError):
        return f"{exc.status} {exc.type}: {exc.detail}"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from the server{_at(exc)} in time: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach the server{_at(exc)}: {exc}"
    return f"event stream lost: {exc}"


def _at(exc: httpx.HTTPError) -> str:
    """" at <its URL>", where httpx knows the request."""
    try:
        url = exc.request.url
    except RuntimeError:  # raised outside a request
        return ""
    return f" at {url.scheme}://{url.netloc.decode()}"


def fail(message: str, exc: Exception | None = None, *, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: a usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code) from exc
