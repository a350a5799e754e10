"""Every error imagehub raises on purpose, and how it reaches the client.

::

    ImagehubError                     500 unknown_error      (base; a bug if it escapes as itself)
    ├── InvalidParams                 400 invalid_params     a field or value the schema refuses
    ├── Unauthenticated               401 unauthenticated    no key, bad header, unknown/revoked key
    ├── Forbidden                     403 forbidden          another namespace's resource
    ├── NotFound                      404 resource_not_found unknown generation or model id
    ├── InvalidState                  409 invalid_state      cancelling a generation that ended
    ├── PayloadTooLarge               413 payload_too_large  body or input image over the limit
    ├── RateLimited                   429 rate_limited       a key's rate, a namespace's queue; retry_after
    ├── UpstreamError                 502 upstream           a remote provider failed
    ├── ClientClosedRequest           499 client_closed_request  a sync call's client left first
    ├── ModelUnavailable              503 model_unavailable  known model, not servable here
    │   └── ModelFilesUnreadable                             its files are there but damaged
    ├── Busy                          503 busy               the database stayed locked; retry_after
    └── StorageUnavailable            503 storage_unavailable  images or rows could not be written
        └── InsufficientStorage       507 insufficient_storage  ... because the disk is full

    GenerationCancelled   raised by a step callback inside an engine; never reaches HTTP
    GenerationFailed      an engine's own refusal (safety block, no image) -> a failed row
    ConfigError           a setting or the catalog file is wrong -> one line at start-up
    BackupRefused         `imagehub backup` cannot copy as asked -> one line

Each HTTP error carries its status and stable ``type``; ``imagehub.api.errors`` turns them into the
error body of API.md section 1.
"""

from __future__ import annotations

import errno
from typing import Any


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: an error names the value it
    refuses, but must not echo a megabyte of it back."""
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} characters)"


def quote(value: Any, limit: int = 80) -> str:
    """``value`` as an error quotes it (``repr``): a string longer than ``limit`` characters is
    quoted up to there, saying how many characters it has."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return clip(repr(value), limit)


class ImagehubError(Exception):
    """Base of the HTTP-facing errors: ``status``, ``type`` and ``title`` are fixed per class."""

    status: int = 500
    type: str = "unknown_error"
    title: str = "Unknown error"
    retry_after: int | None = None
    """Seconds for the ``Retry-After`` header, when the error says when to come back."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidParams(ImagehubError):
    status, type, title = 400, "invalid_params", "Invalid parameters"


class Unauthenticated(ImagehubError):
    status, type, title = 401, "unauthenticated", "Unauthenticated"


class Forbidden(ImagehubError):
    status, type, title = 403, "forbidden", "Forbidden"


class NotFound(ImagehubError):
    status, type, title = 404, "resource_not_found", "Resource not found"


class InvalidState(ImagehubError):
    status, type, title = 409, "invalid_state", "Invalid state"


class DataDirBusy(ImagehubError):
    """Another process runs the workers of this data dir (a server, or an in-process CLI run)."""

    status, type, title = 409, "data_dir_busy", "Data dir busy"


class PayloadTooLarge(ImagehubError):
    status, type, title = 413, "payload_too_large", "Payload too large"


class RateLimited(ImagehubError):
    status, type, title = 429, "rate_limited", "Rate limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ClientClosedRequest(ImagehubError):
    """A sync call's client closed its connection before the answer (a timeout, Ctrl-C): the
    generation was cancelled at its next step. Nobody reads the answer; logs and metrics do
    (499, as nginx counts such requests)."""

    status, type, title = 499, "client_closed_request", "Client closed request"


class UpstreamError(ImagehubError):
    status, type, title = 502, "upstream", "Upstream provider error"


class ModelUnavailable(ImagehubError):
    status, type, title = 503, "model_unavailable", "Model unavailable"


class ModelFilesUnreadable(ModelUnavailable):
    """A local model's files are there but cannot be read (damaged, cut short): loading again
    before they change would fail the same way."""


class Busy(ImagehubError):
    """A write waited its whole busy timeout for another process's database lock: nothing was
    written, and the same request can be sent again."""

    status, type, title = 503, "busy", "Busy"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StorageUnavailable(ImagehubError):
    """The server could not write an image or a row (a read-only disk, a storage service that
    refuses): the server's fault, not the request's; nothing of the request was kept."""

    status, type, title = 503, "storage_unavailable", "Storage unavailable"


class InsufficientStorage(StorageUnavailable):
    """... because the disk (or quota) is full."""

    status, type, title = 507, "insufficient_storage", "Insufficient storage"


def storage_error(exc: OSError, what: str) -> StorageUnavailable:
    """``exc``, met writing ``what`` ("the images"), as the client is told it: no path."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    cls = InsufficientStorage if full else StorageUnavailable
    return cls(f"the server could not store {what}: {exc.strerror or type(exc).__name__}")


class GenerationCancelled(Exception):
    """Raised from a step callback: the job was cancelled; the engine must stop and keep nothing."""


class GenerationFailed(Exception):
    """An engine's own, expected refusal (safety block, no image returned): the row fails with
    this message, the server stays healthy."""


class ConfigError(Exception):
    """The configuration cannot work (a setting's value, the catalog file): raised at start-up,
    where the CLI prints it as one line; the message names the variable or file and the value."""


class BackupRefused(Exception):
    """``imagehub backup`` cannot make the copy asked for (DEST holds something, the database is
    not a SQLite file): the CLI prints it as one line, and nothing is copied."""
