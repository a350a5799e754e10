"""One place that turns every error into the error body of API.md section 1."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from imagehub.errors import Busy, ImagehubError, InsufficientStorage, StorageUnavailable, clip

log = logging.getLogger(__name__)

_STARLETTE_TYPES = {404: ("resource_not_found", "Resource not found"),
                    405: ("method_not_allowed", "Method not allowed")}


def error_response(status: int, type_: str, title: str, detail: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    # "message" repeats "detail" (an extension): OpenAI SDKs show error.message to their users.
    body = {"error": {"type": type_, "title": title, "detail": detail, "message": detail},
            "status": "error", "status_message": type_}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ImagehubError)
    async def _ours(request: Request, exc: ImagehubError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        text = str(exc.orig).lower()
        if "database is locked" in text or "database is busy" in text:  # past the busy timeout
            return _error(Busy("the database stayed locked by another process's write for the "
                               "busy timeout (IMAGEHUB_DB_BUSY_TIMEOUT_SECONDS); the request was "
                               "not recorded, send it again"))
        if "disk is full" in text or "readonly database" in text:  # SQLite's words
            log.error("the database could not be written: %s", exc.orig)
            cls = InsufficientStorage if "full" in text else StorageUnavailable
            return _error(cls("the server could not write its database (" + str(exc.orig)
                              + "); the request was not recorded"))
        raise exc  # a real fault: the request-id middleware logs it and answers 500

    @app.exception_handler(RequestValidationError)
    async def _params(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_params", "Invalid parameters", _describe(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_, title = _STARLETTE_TYPES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = f"no route {request.method} {clip(request.url.path)}" \
            if exc.status_code in (404, 405) else str(exc.detail)
        headers = exc.headers
        if exc.status_code == 405:
            allowed = _allowed_methods(request) or (headers or {}).get("Allow", "")
            headers = {**(headers or {}), "Allow": allowed}
            detail += f" (it takes {allowed})"
        return error_response(exc.status_code, type_, title, detail, headers)


def _error(exc: ImagehubError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(exc.status, exc.type, exc.title, exc.detail, headers)


def _allowed_methods(request: Request, routes: Any = None) -> str:
    """Every method some route takes at this path (Starlette's own ``Allow`` names only the first
    route's: ``POST`` for ``/api/ai/queue``, which ``GET`` lists too). FastAPI wraps an included
    router in a route of its own; its routes are looked into."""
    methods: set[str] = set()
    for route in request.app.routes if routes is None else routes:
        match, _ = route.matches(request.scope)
        if match is Match.NONE:
            continue
        inner = getattr(route, "routes", None) or getattr(
            getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            methods.update(_allowed_methods(request, inner).split(", "))
        else:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods - {""}))


def _describe(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return f"{field}: {first.get('input')!r} {first.get('msg', 'is invalid').lower()}"
