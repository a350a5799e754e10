"""``services.inputs``: a row's input images read back, stored ones and (rows from before they
were stored) inline ones alike."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from imagehub.errors import GenerationFailed
from imagehub.services import inputs
from imagehub.storage.local import LocalStorage


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_stored_image_an_inline_one_and_a_lost_one(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("inputs/abc", _png((1, 2, 3)), "image/png")
    stored = inputs.load(storage, "input_image", f"{inputs.REF}abc")
    inline = inputs.load(storage, "input_image",
                         "data:image/png;base64," + base64.b64encode(_png((4, 5, 6))).decode())
    assert stored.getpixel((0, 0)) == (1, 2, 3) and inline.getpixel((0, 0)) == (4, 5, 6)
    with pytest.raises(GenerationFailed, match="imagehub-input:gone is no longer in storage"):
        inputs.load(storage, "input_image", f"{inputs.REF}gone")


def test_rows_echo_the_short_form_whether_stored_or_inline() -> None:
    uri = "data:image/png;base64," + base64.b64encode(_png((1, 2, 3))).decode()
    short = f"data:image/png;base64,...({len(uri)} chars)"
    assert inputs.echo(uri) == short  # a row from before: kept inline
    assert inputs.echo(f"{short}#sha256={'0' * 64}") == short
    assert inputs.echo("https://example.com/a.png") == "https://example.com/a.png"


def test_a_row_from_before_compares_as_a_new_request_keeps_it() -> None:
    """An ``Idempotency-Key`` retry of a request queued before images were stored: the old row's
    inline URI, in the kept form, equals the retry's."""
    import hashlib

    data = _png((1, 2, 3))
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    kept = f"data:image/png;base64,...({len(uri)} chars)#sha256={hashlib.sha256(data).hexdigest()}"
    assert inputs.comparable(uri) == kept == inputs.comparable(kept)
    assert inputs.comparable([uri, "https://example.com/a.png"]) == [kept, "https://example.com/a.png"]
