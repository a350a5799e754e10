"""Image encoding and decoding (PNG out; input images in, from data URIs or fetched bytes)."""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image

from imagehub.errors import InvalidParams, PayloadTooLarge

PNG_COMPRESS_LEVEL = 1
"""Fast zlib level: PNG stays lossless; level 6 costs ~4x the time for ~15% fewer bytes."""

INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""The formats an input image may be in (the content types ``services/fetch.py`` accepts): no
other Pillow plugin ever parses a client's bytes."""
_FORMAT_NAMES = "PNG/JPEG/WebP/GIF/BMP"
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def decode_data_uri(field: str, uri: str) -> Image.Image:
    """``data:image/...;base64,...`` → a loaded RGB image; InvalidParams naming ``field`` otherwise,
    PayloadTooLarge over the pixel limit."""
    header, _, payload = uri.partition(",")
    shown = f"{uri[:40]!r}..."
    if not header.startswith("data:image/") or ";base64" not in header:
        raise InvalidParams(f"{field}: {shown} is not a data:image/...;base64, URI")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParams(f"{field}: {shown} does not carry valid base64 ({exc})") from exc
    return decode_image(field, shown, data)


def decode_image(field: str, shown: str, data: bytes) -> Image.Image:
    """``data`` as a loaded RGB image. InvalidParams names ``field`` and ``shown`` (the value as the
    client sent it) when it is not a readable image in :data:`INPUT_FORMATS`; PayloadTooLarge when
    it has more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb)."""
    return _read(field, shown, data, load=True).convert("RGB")


def image_type(field: str, shown: str, data: bytes) -> str:
    """The content type of ``data`` (``image/png``, ...), from its header alone; the same errors
    as :func:`decode_image` for what its header shows."""
    image = _read(field, shown, data, load=False)
    return image.get_format_mimetype() or f"image/{str(image.format).lower()}"


def _read(field: str, shown: str, data: bytes, *, load: bool) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
        check_pixels(field, shown, image.size)
        if load:
            image.load()
    except Image.UnidentifiedImageError as exc:  # its message holds the BytesIO's repr
        raise InvalidParams(f"{field}: {shown} is not a readable image "
                            f"(not a {_FORMAT_NAMES} file)") from exc
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(field, shown, _bomb_size(exc)) from exc
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InvalidParams(f"{field}: {shown} is not a readable image ({exc})") from exc
    return image


def check_pixels(field: str, shown: str, size: tuple[int, int]) -> None:
    """PayloadTooLarge past ``Image.MAX_IMAGE_PIXELS``.

    Pillow itself only raises ``DecompressionBombError`` past twice that limit and merely warns
    (``DecompressionBombWarning``) between once and twice; turning the warning into an error with
    a warnings filter is process-wide and not thread-safe, so the size is compared here, after
    the header is read and before a pixel is decoded.
    """
    limit = Image.MAX_IMAGE_PIXELS
    width, height = size
    if limit is not None and width * height > limit:
        raise _too_many_pixels(field, shown, f"{width}x{height} ({width * height} pixels)")


def _bomb_size(exc: Image.DecompressionBombError) -> str:
    """The pixel count in Pillow's refusal ("Image size (N pixels) exceeds limit of ...")."""
    found = _BOMB_PIXELS.search(str(exc))
    return f"{found.group(1)} pixels" if found else "too many pixels"


def _too_many_pixels(field: str, shown: str, size: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{field}: {shown} is an image of {size}, over the limit of "
                           f"{Image.MAX_IMAGE_PIXELS} pixels")
