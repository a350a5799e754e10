"""Pure ASGI middleware: a request id on every response, and the body size limit."""

from __future__ import annotations

import logging
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagehub.api.errors import error_response

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Echo ``X-Request-Id`` (or make one) on every response, a 500 from a bug included. A client
    that hangs up before its body has arrived gets nothing and is logged as that, not as an
    error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = incoming or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # gone before its body was read: nobody to answer, nothing done
            log.info("client disconnected before sending its whole request, request id %s",
                     request_id)
        except Exception:
            log.exception("unhandled error, request id %s", request_id)
            if started:
                raise
            response = error_response(500, "unknown_error", "Unknown error",
                                      f"internal error; quote request id {request_id} when reporting it")
            await response(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send, int(length))
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge(seen)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge as exc:
            await self._too_large(scope, receive, send, exc.size)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = error_response(413, "payload_too_large", "Payload too large",
                                  f"body: {size} bytes is over the limit of {self.max_bytes} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size
