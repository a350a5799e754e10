"""Request-scoped dependencies: the hub, the caller, the JSON or multipart body."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from imagehub.errors import InvalidParams, RateLimited
from imagehub.services.hub import Hub
from imagehub.services.keys import ANONYMOUS, Principal
from imagehub.services.openai_images import FormBody, Upload


# Dependencies are ``async def`` on purpose: they are quick, and a sync dependency costs a
# thread-pool hop per request.
# FastAPI resolves a route's dependencies in the order of its parameters: routes list
# ``principal`` before ``json_body``, so a caller without a key hears 401 before any word on the body.

async def hub(request: Request) -> Hub:
    return request.app.state.hub


async def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` (auth on by default), rate-limited."""
    h: Hub = request.app.state.hub
    if not h.settings.auth_enabled:
        return ANONYMOUS
    caller = h.keys.authenticate(request.headers.get("authorization"))
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.check(caller.key_id or caller.namespace)
    return caller


async def client_gone(request: Request) -> AsyncIterator[threading.Event]:
    """An event set once the client closes its connection before its answer (a timeout, Ctrl-C,
    an SDK giving up and retrying): a sync generation then stops at its next step rather than run
    for nobody. Listed after the body's dependency: the watcher only reads what comes after the
    body, which is the disconnect."""
    gone = threading.Event()
    watcher = asyncio.create_task(_until_disconnect(request, gone))
    try:
        yield gone
    finally:
        watcher.cancel()


async def _until_disconnect(request: Request, gone: threading.Event) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


MAX_BODY_DEPTH = 32
"""Arrays and objects nested deeper than this are refused: no request field needs more, and
Python's JSON parser and validators recurse."""


async def json_body(request: Request) -> Any:
    """The body as JSON; 400 naming the problem when it is not JSON, or is JSON that Python reads
    but no request may carry: ``NaN`` and ``Infinity``, integers past 4300 digits, strings with
    unpaired surrogates (``"\\ud800"``), nesting past ``MAX_BODY_DEPTH``."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidParams("body: empty; expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidParams(f"body: nested more than {MAX_BODY_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long to read
        reason = str(exc).split(";")[0] if "integer string conversion" in str(exc) else exc
        raise InvalidParams(f"body: not valid JSON ({reason})") from None
    _check_values(body)
    return body


MAX_FORM_FILES = 16
"""Files one multipart request may carry (OpenAI's images.edit takes up to 16 images)."""


async def form_body(request: Request) -> FormBody:
    """A ``multipart/form-data`` body (what OpenAI's SDKs send to ``images.edit``): its text
    fields and its files, by name (``image[]`` and ``image`` are one name); 400 naming the
    problem otherwise. The body's size is capped by ``BodyLimitMiddleware`` as any other."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise InvalidParams(f"body: expected multipart/form-data with the image file(s) and the "
                            f"fields, got Content-Type {kind[:60]!r}")
    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=64)
    except MultiPartException as exc:
        raise InvalidParams(f"body: not valid multipart/form-data ({exc.message})") from None
    body = FormBody()
    try:
        for key, value in form.multi_items():
            name = key.removesuffix("[]")
            if isinstance(value, UploadFile):
                body.files.setdefault(name, []).append(
                    Upload(value.filename or "", await value.read()))
            elif name in body.fields:
                raise InvalidParams(f"{name}: sent more than once ({body.fields[name][:40]!r}, "
                                    f"then {value[:40]!r})")
            else:
                _check_text(name, value)
                body.fields[name] = value
    finally:
        await form.close()
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_values(body: Any) -> None:
    """Walk the body once (no recursion): its depth, and every string encodable as UTF-8."""
    stack: list[tuple[str, Any, int]] = [("body", body, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(path, value)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_BODY_DEPTH:
            raise InvalidParams(f"body: nested more than {MAX_BODY_DEPTH} levels deep")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            name = f"{key}" if path == "body" else f"{path}.{key}"
            _check_text(name, str(key))
            stack.append((name, item, depth + 1))


def _check_text(path: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end].encode("unicode_escape").decode()
        where = path.encode("utf-8", "backslashreplace").decode()  # a key may hold one too
        raise InvalidParams(f"{where}: {text[:40]!r} holds an unpaired surrogate ({bad}); "
                            "text must be valid Unicode") from None


class RateLimiter:
    """A fixed one-minute window per key: ``per_minute`` requests, then 429 with Retry-After."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.time()
        window = int(now // 60)
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.per_minute:
                raise RateLimited(f"rate limit of {self.per_minute} requests per minute reached "
                                  "for this key", retry_after=max(1, int(60 - now % 60)))
            self._windows[key] = (start, count + 1)
