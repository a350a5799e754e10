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


def test_a_small_file_declaring_more_than_the_given_limit_is_413_naming_the_setting() -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        decode_data_uri("input_image", data_uri(png_declaring(2000, 1000)), max_pixels=1_000_000)
    assert raised.value.detail.endswith("is an image of 2000x1000 (2000000 pixels), over the limit "
                                        "of 1000000 pixels (IMAGEHUB_MAX_INPUT_PIXELS)")


def test_a_header_check_reads_format_and_size_and_decodes_nothing() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    truncated = data_uri(buffer.getvalue()[:-30])  # the pixel data cut short
    image = decode_data_uri("input_image", truncated, load=False)
    assert image.size == (64, 48) and image.format == "PNG"
    with pytest.raises(InvalidParams, match="is not a readable image"):
        decode_data_uri("input_image", truncated)


def test_large_images_decode_two_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six threads each decoding an image over ``LARGE_PIXELS``: at most two decode at once, so a
    burst of large inputs cannot take six images' memory together."""
    import threading
    import time

    from PIL import PngImagePlugin

    from imagehub.storage.images import LARGE_PIXELS

    buffer = io.BytesIO()
    Image.new("L", (LARGE_PIXELS // 1000 + 1, 1000)).save(buffer, format="PNG")
    data = buffer.getvalue()
    inside, most, lock = 0, 0, threading.Lock()
    load = PngImagePlugin.PngImageFile.load

    def counted(self):  # type: ignore[no-untyped-def]
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        try:
            return load(self)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted)
    threads = [threading.Thread(target=decode_image, args=("input_image", "'big'", data))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2
