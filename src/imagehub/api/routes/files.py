"""``GET /api/files/<token>/<n>.png``: image bytes behind a signed, expiring URL (no key needed)."""

from __future__ import annotations

import hashlib
import re

from fastapi import APIRouter, Depends, Request, Response

from imagehub.api.deps import hub
from imagehub.errors import NotFound
from imagehub.services.hub import Hub

router = APIRouter(prefix="/api/files", tags=["files"])
_NAME = re.compile(r"^\d{1,2}\.png$")


@router.get("/{token}/{filename}")
@router.head("/{token}/{filename}", include_in_schema=False)  # GET's headers, no body
def get_file(token: str, filename: str, request: Request, h: Hub = Depends(hub)) -> Response:
    generation_id = h.deps.signer.verify(token)
    if generation_id is None or not _NAME.match(filename):
        raise NotFound("file not found, or its link expired; fetch the generation again for a fresh URL")
    data = h.deps.storage.get(f"{generation_id}/{filename}")
    if data is None:
        raise NotFound(f"file not found: {filename} of generation {generation_id}")
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={h.deps.signer.ttl}, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)
