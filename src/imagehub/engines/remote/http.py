"""HTTP to providers: bounded retries with backoff and jitter, Retry-After, error mapping.

Retry policy (one :class:`RetryPolicy`, from settings):

- retried: HTTP 408, 429, 500, 502, 503, 504 and any transport error (connect refused/reset,
  read/connect timeout, broken protocol);
- at most ``max_retries`` retries after the first try;
- the wait before retry ``i`` (0-based) is ``d/2 + uniform(0, d/2)`` with
  ``d = min(backoff_max, backoff · 2^i)`` (exponential backoff, "equal jitter");
- a ``Retry-After`` header (seconds or an HTTP date), or Google's ``RetryInfo.retryDelay`` in the
  error body, replaces that wait when longer; one longer than
  ``backoff_max`` is not waited for: the call fails at once so a provider chain can move on;
- no wait runs past the generation's deadline.

Everything else non-2xx fails at once. Every failure is an :class:`UpstreamError` (502) whose
message names the provider, the status and the provider's own message, with the key scrubbed.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

import httpx

from imagehub.errors import UpstreamError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 30.0

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based); None: do not retry."""
        if retry >= self.max_retries:
            return None
        base = min(self.backoff_max, self.backoff * 2**retry)
        wait = base / 2 + random.uniform(0, base / 2)
        if retry_after is not None:
            if retry_after > self.backoff_max:
                return None
            wait = max(wait, retry_after)
        return wait


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date), else Google's ``RetryInfo`` in the
    error body; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return google_retry_delay(response)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def google_retry_delay(response: httpx.Response) -> float | None:
    """Seconds of a ``google.rpc.RetryInfo`` detail (``{"retryDelay": "41s"}``) in a Google
    error body (Gemini sends its 429s so, without ``Retry-After``); None without one."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


class ProviderHTTP:
    """One provider's HTTP side: its name, key (for scrubbing), retry policy and deadline."""

    def __init__(self, client: httpx.AsyncClient, provider: str, policy: RetryPolicy,
                 deadline: float, secret: str = "") -> None:
        self.client = client
        self.provider = provider
        self.policy = policy
        self.deadline = deadline
        """``time.monotonic()`` past which nothing more is tried."""
        self._secret = secret
        self.requests = 0
        """HTTP requests sent (retries and polls included), recorded on the row."""

    def scrub(self, text: str) -> str:
        """``text`` without the key: whole, in any case, or any run of 8 or more of its
        characters (a provider quoting it cut short or upper-cased)."""
        return scrub_secret(text, self._secret)

    def error(self, message: str) -> UpstreamError:
        return UpstreamError(self.scrub(f"{self.provider}: {message}"))

    async def request(self, method: str, url: str, *, ok: Callable[[httpx.Response], bool] | None = None,
                      **kwargs: Any) -> httpx.Response:
        """Send with retries; the response when ``ok`` (default: 2xx), else UpstreamError."""
        accept = ok or (lambda r: r.is_success)
        retry = 0
        while True:
            self.requests += 1
            try:
                response = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                problem, after, response = _describe_transport(exc), None, None
            else:
                if accept(response):
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise self.error(f"HTTP {response.status_code}: {provider_message(response)}")
                problem = f"HTTP {response.status_code}: {provider_message(response)}"
                after = retry_after_seconds(response)
            wait = self.policy.delay(retry, after)
            if wait is None or time.monotonic() + wait > self.deadline:
                raise self.error(_gave_up(problem, retry + 1, after, self.policy))
            await asyncio.sleep(wait)
            retry += 1


_SECRET_MIN = 8


def scrub_secret(text: str, secret: str) -> str:
    """``text`` with the secret, and any piece of it of at least 8 characters, shown as ``***``
    wherever it stands (glued to other text, URL-encoded around it, in any case)."""
    if not secret:
        return text
    if len(secret) < _SECRET_MIN:
        return text.replace(secret, "***")
    folded = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)  # same length
    key = secret.lower()
    hidden = [False] * len(text)
    for start in range(len(key) - _SECRET_MIN + 1):
        piece = key[start:start + _SECRET_MIN]
        at = folded.find(piece)
        while at != -1:
            hidden[at:at + _SECRET_MIN] = [True] * _SECRET_MIN
            at = folded.find(piece, at + 1)
    runs = groupby(zip(text, hidden), key=itemgetter(1))  # each hidden run becomes one "***"
    return "".join("***" if hide else "".join(char for char, _ in run) for hide, run in runs)


def _describe_transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__}: {exc})"


def _gave_up(problem: str, tries: int, after: float | None, policy: RetryPolicy) -> str:
    if after is not None and after > policy.backoff_max:
        return f"{problem}; the provider asks to retry after {after:.0f} s, longer than " \
               f"IMAGEHUB_PROVIDER_BACKOFF_MAX_SECONDS ({policy.backoff_max:g})"
    return f"{problem} (gave up after {tries} tries)"


def provider_message(response: httpx.Response) -> str:
    """The provider's own error text: Google's ``error.message``, fal's ``detail``, Oxen's
    ``error.detail``, OpenAI's ``error.message``; else the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return _short(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            parts = [str(error.get(k)) for k in ("status", "type", "message", "detail") if error.get(k)]
            if parts:
                return _short(" ".join(dict.fromkeys(parts)))
        if "detail" in body:
            return _short(json.dumps(body["detail"]) if not isinstance(body["detail"], str)
                          else body["detail"])
    return _short(json.dumps(body))


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
