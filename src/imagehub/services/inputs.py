"""A request's input images kept once, in storage, not in its rows.

A data-URI ``input_image`` is stored as a file (``inputs/<sha256>``, its bytes decoded from the
URI, one file per distinct image however many rows and requests carry it). The rows hold:

- in ``resolved`` (what the engine runs from): a reference, ``imagehub-input:<sha256>``;
- in ``params`` (what rows echo and ``Idempotency-Key`` compares): the URI's short form,
  ``data:image/png;base64,...(<length> chars)#sha256=<hex>``, echoed without its digest.

A 13 MB photo with ``num_generations: 4`` used to be 8 copies in the database (two columns of
four rows), and every listing read them all. URLs stay as they are: they are fetched when the job
runs. Rows stored before this kept their data URIs inline; they run and echo as before.

Once no queued or running generation refers to a stored image, nothing reads it again (an ended
row echoes only the short form): ``drop_unused`` deletes it (``services.retention``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from PIL import Image

from imagehub.errors import GenerationFailed
from imagehub.services.fetch import default_fetcher, load_image
from imagehub.services.requests import ParsedRequest, as_list
from imagehub.storage.base import Storage
from imagehub.storage.images import decode_image

REF = "imagehub-input:"
_DIGEST = re.compile(r"#sha256=[0-9a-f]{64}$")
_FOLDER = "inputs/"
_WRITING = threading.Lock()
"""Held while an input image is written, and while unused ones are found and deleted: a delete
never takes a file this process has just written again for a new request."""


def keep(storage: Storage, request: ParsedRequest) -> ParsedRequest:
    """``request`` with its data-URI input images stored, as its rows will hold it."""
    images = request.resolved.get("input_image")
    if images is None:
        return request
    stored = {uri: _store(storage, uri) for uri in as_list(images) if uri.startswith("data:")}
    if not stored:
        return request
    params = {**request.params, "input_image": _mapped(request.params["input_image"],
                                                       lambda uri: _short(uri, stored[uri]))}
    resolved = {**request.resolved, "input_image": _mapped(images, lambda uri: REF + stored[uri])}
    return replace(request, params=params, resolved=resolved)


def load(storage: Storage, field_name: str, value: str) -> Image.Image:
    """One ``input_image`` entry of a stored row as an RGB image: a stored one read back, a data
    URI (a row from before) decoded, a URL fetched."""
    if not value.startswith(REF):
        return load_image(field_name, value)
    data = storage.get(_FOLDER + value[len(REF):])
    if data is None:
        raise GenerationFailed(f"{field_name}: the stored input image {value} is no longer in "
                               "storage")
    return decode_image(field_name, value, data, default_fetcher().max_pixels)


def comparable(value: Any) -> Any:
    """A row's ``params`` value as a new request's kept form shows it: an inline data URI (a row
    from before) as its short form with digest, so an ``Idempotency-Key`` retry of a request
    queued before still counts as the same request."""
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and not _DIGEST.search(value):
        payload = value.partition(",")[2]
        try:
            digest = hashlib.sha256(base64.b64decode(payload)).hexdigest()
        except ValueError:
            return value
        return _short(value, digest)
    return value


def echo(value: str) -> str:
    """An ``input_image`` of ``params`` as rows echo it: the short form without its digest; a
    data URI kept inline (a row from before) shortened the same way."""
    if _DIGEST.search(value):
        return _DIGEST.sub("", value)
    if value.startswith("data:") and len(value) > 64:
        return f"{value[:value.find(',') + 1]}...({len(value)} chars)"
    return value


def drop_unused(storage: Storage, open_resolved: Callable[[str], Iterable[Mapping[str, Any]]],
                written_before: float) -> int:
    """Delete the stored input images last written before ``written_before`` (Unix seconds) that
    no open generation refers to (``open_resolved(text)``: what the open rows holding ``text``
    run from); how many. A request stores its image before its rows are written: the age keeps
    that image (in this process, the lock also keeps one written between the look and the
    delete; another process's, the second look narrows to the instant before the unlink)."""
    with _WRITING:
        stale = [key for key, written in storage.listed(_FOLDER) if written < written_before]
        if not stale:
            return 0
        wanted = {_FOLDER + value[len(REF):] for resolved in open_resolved(REF)
                  for value in as_list(resolved.get("input_image")) if value.startswith(REF)}
        unused = set(stale) - wanted
        # written again meanwhile (by another process, whose rows may not be visible yet): kept
        unused &= {key for key, written in storage.listed(_FOLDER) if written < written_before}
        for key in unused:
            storage.delete(key)
    return len(unused)


def _store(storage: Storage, uri: str) -> str:
    header, _, payload = uri.partition(",")
    data = base64.b64decode(payload)  # checked when the request was parsed
    digest = hashlib.sha256(data).hexdigest()
    with _WRITING:  # same name, same bytes: written again, so it is young for drop_unused
        storage.put(_FOLDER + digest, data, header[len("data:"):].split(";")[0])
    return digest


def _short(uri: str, digest: str) -> str:
    return f"{uri[:uri.find(',') + 1]}...({len(uri)} chars)#sha256={digest}"


def _mapped(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value) if value.startswith("data:") else value
    return [change(v) if v.startswith("data:") else v for v in value]

