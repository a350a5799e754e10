"""Request-scoped dependencies: the hub, the caller, the JSON body."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import Request

from imagehub.errors import InvalidParams, RateLimited
from imagehub.services.hub import Hub
from imagehub.services.keys import ANONYMOUS, Principal


# Dependencies are ``async def`` on purpose: they are quick, and a sync dependency costs a
# thread-pool hop per request.

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


async def json_body(request: Request) -> Any:
    """The body as JSON; 400 naming the problem when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidParams("body: empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParams(f"body: not valid JSON ({exc})") from exc


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
