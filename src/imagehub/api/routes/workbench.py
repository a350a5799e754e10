"""``GET /``: the Workbench, a browser UI shipped as static files in ``imagehub/workbench``.

The assets are plain ES modules committed as they are served: nothing is built at install time.
The page asks for the API key and keeps it in the tab's ``sessionStorage``; it is sent only in the
``Authorization`` header, never in a URL.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter
from fastapi.responses import Response

from imagehub.errors import NotFound, quote

router = APIRouter(include_in_schema=False)

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # scripts only from here; images also from the signed-URL host (IMAGEHUB_PUBLIC_URL) and data:
    "Content-Security-Policy": "default-src 'self'; img-src * data: blob:; "
                               "connect-src *; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}


def _asset(name: str) -> Response:
    item = _find(name)
    suffix = "." + name.rsplit(".", 1)[-1]
    media_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(item.read_bytes(), media_type=media_type, headers=_HEADERS)


def _find(name: str) -> Traversable:
    """The shipped file ``name`` names, or NotFound: no hidden or Python file, no step out of the
    folder, no empty segment (``app.js/`` is not ``app.js``), no name the OS refuses (too long)."""
    parts = name.split("/")
    if name.endswith(".py") or any(not p or p.startswith(".") for p in parts):
        raise _not_found(name)
    item = (resources.files("imagehub") / "workbench").joinpath(*parts)
    try:
        if item.is_file():
            return item
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL byte
        pass
    raise _not_found(name)


def _not_found(name: str) -> NotFound:
    return NotFound(f"workbench asset not found: {quote(name)}")


@router.get("/")
@router.head("/")
def index() -> Response:
    return _asset("index.html")


@router.get("/workbench/{name:path}")
@router.head("/workbench/{name:path}")
def asset(name: str) -> Response:
    return _asset(name)
