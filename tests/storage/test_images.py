"""Input-image decoding (``imagehub.storage.images``): bombs are 413 by Pillow's pixel limit,
unreadable bytes are 400 naming the field and the value, never an internal object's repr."""

from __future__ import annotations

import base64
import io
import struct

import pytest
from image_bombs import data_uri, png_declaring
from PIL import Image

from imagehub.errors import InvalidParams, PayloadTooLarge
from imagehub.storage.images import decode_data_uri, decode_image

LIMIT = str(Image.MAX_IMAGE_PIXELS)


@pytest.mark.parametrize("side", [20000, 10000])  # past Pillow's error; past its mere warning
def test_a_png_declaring_too_many_pixels_is_413_naming_size_and_limit(side: int) -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        decode_data_uri("input_image", data_uri(png_declaring(side, side)))
    detail = raised.value.detail
    assert detail.startswith("input_image: 'data:image/png;base64,iVBOR")
    assert f"{side * side} pixels" in detail and LIMIT in detail


def test_a_gif_whose_screen_is_too_big_is_413() -> None:
    buffer = io.BytesIO()
    Image.new("P", (1, 1)).save(buffer, format="GIF")
    gif = bytearray(buffer.getvalue())
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    with pytest.raises(PayloadTooLarge, match=f"{65535 * 65535} pixels, over the limit of {LIMIT} pixels"):
        decode_image("input_image", "'x.gif'", bytes(gif))


@pytest.mark.parametrize("data", [b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_an_unreadable_image_names_the_value_not_an_internal_object(data: bytes) -> None:
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    with pytest.raises(InvalidParams) as raised:
        decode_data_uri("input_image", uri)
    detail = raised.value.detail
    assert detail.startswith(f"input_image: {uri[:40]!r}... is not a readable image (not a PNG/JPEG")
    assert "BytesIO" not in detail and " at 0x" not in detail


def test_formats_other_than_the_accepted_ones_are_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="TIFF")
    with pytest.raises(InvalidParams, match="not a PNG/JPEG/WebP/GIF/BMP file"):
        decode_image("input_image", "'x.tiff'", buffer.getvalue())


def test_bad_base64_is_named_as_such() -> None:
    with pytest.raises(InvalidParams, match=r"^input_image: 'data:image/png;base64,\*\*\*'\.\.\. "
                                            r"does not carry valid base64"):
        decode_data_uri("input_image", "data:image/png;base64,***")


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_small_images_still_decode_to_rgb(kind: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), (10, 200, 30)).save(buffer, format=kind)
    image = decode_data_uri("input_image", data_uri(buffer.getvalue(), kind.lower()))
    assert image.mode == "RGB" and image.size == (5, 3)
