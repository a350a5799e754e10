"""Image encoding and decoding (PNG out; input images in, from data URIs or fetched bytes)."""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
from contextlib import nullcontext

from PIL import Image

from imagehub.errors import InvalidParams, PayloadTooLarge

PNG_COMPRESS_LEVEL = 1
"""Fast zlib level: PNG stays lossless; level 6 costs ~4x the time for ~15% fewer bytes."""

INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""The formats an input image may be in (the content types ``services/fetch.py`` accepts): no
other Pillow plugin ever parses a client's bytes."""
_FORMAT_NAMES = "PNG/JPEG/WebP/GIF/BMP"
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
MAX_INPUT_PIXELS = 50_000_000
"""An input image's default pixel limit (``IMAGEHUB_MAX_INPUT_PIXELS``): a 48-megapixel phone
photo passes; decoding one takes up to 200 MB."""
LARGE_PIXELS = 4_000_000
_LARGE_DECODES = threading.BoundedSemaphore(2)
"""Images over ``LARGE_PIXELS`` decode two at a time in a process: a burst of requests each
carrying a large image (or a small file declaring one) cannot take its memory all at once."""


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def decode_data_uri(field: str, uri: str, max_pixels: int | None = None, *,
                    load: bool = True) -> Image.Image:
    """``data:image/...;base64,...`` → a loaded RGB image; InvalidParams naming ``field`` otherwise,
    PayloadTooLarge over ``max_pixels``. ``load=False``: only the header is read (format and
    size checked; nothing decoded), and the image comes back unloaded."""
    header, _, payload = uri.partition(",")
    shown = f"{uri[:40]!r}..."
    if not header.startswith("data:image/") or ";base64" not in header:
        raise InvalidParams(f"{field}: {shown} is not a data:image/...;base64, URI")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParams(f"{field}: {shown} does not carry valid base64 ({exc})") from exc
    if not load:
        return _read(field, shown, data, max_pixels)
    return decode_image(field, shown, data, max_pixels)


def decode_image(field: str, shown: str, data: bytes, max_pixels: int | None = None) -> Image.Image:
    """``data`` as a loaded RGB image. InvalidParams names ``field`` and ``shown`` (the value as the
    client sent it) when it is not a readable image in :data:`INPUT_FORMATS`; PayloadTooLarge when
    it has more pixels than ``max_pixels`` (default Pillow's ``Image.MAX_IMAGE_PIXELS``: a
    decompression bomb)."""
    image = _read(field, shown, data, max_pixels)
    width, height = image.size
    with _LARGE_DECODES if width * height > LARGE_PIXELS else nullcontext():
        return _load(field, shown, image).convert("RGB")


def image_type(field: str, shown: str, data: bytes, max_pixels: int | None = None) -> str:
    """The content type of ``data`` (``image/png``, ...), from its header alone; the same errors
    as :func:`decode_image` for what its header shows."""
    image = _read(field, shown, data, max_pixels)
    return image.get_format_mimetype() or f"image/{str(image.format).lower()}"


def _load(field: str, shown: str, image: Image.Image) -> Image.Image:
    try:
        image.load()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InvalidParams(f"{field}: {shown} is not a readable image ({exc})") from exc
    return image


def _read(field: str, shown: str, data: bytes, max_pixels: int | None) -> Image.Image:
    """``data`` opened (its header read, its size checked), not decoded."""
    try:
        image = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
        check_pixels(field, shown, image.size, max_pixels)
    except Image.UnidentifiedImageError as exc:  # its message holds the BytesIO's repr
        raise InvalidParams(f"{field}: {shown} is not a readable image "
                            f"(not a {_FORMAT_NAMES} file)") from exc
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(field, shown, _bomb_size(exc), max_pixels) from exc
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InvalidParams(f"{field}: {shown} is not a readable image ({exc})") from exc
    return image


def check_pixels(field: str, shown: str, size: tuple[int, int], max_pixels: int | None = None) -> None:
    """PayloadTooLarge past ``max_pixels`` (an input image's setting) or, without one, Pillow's
    ``Image.MAX_IMAGE_PIXELS``.

    Pillow itself only raises ``DecompressionBombError`` past twice that limit and merely warns
    (``DecompressionBombWarning``) between once and twice; turning the warning into an error with
    a warnings filter is process-wide and not thread-safe, so the size is compared here, after
    the header is read and before a pixel is decoded.
    """
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    width, height = size
    if limit is not None and width * height > limit:
        raise _too_many_pixels(field, shown, f"{width}x{height} ({width * height} pixels)",
                               max_pixels)


def _bomb_size(exc: Image.DecompressionBombError) -> str:
    """The pixel count in Pillow's refusal ("Image size (N pixels) exceeds limit of ...")."""
    found = _BOMB_PIXELS.search(str(exc))
    return f"{found.group(1)} pixels" if found else "too many pixels"


def _too_many_pixels(field: str, shown: str, size: str, max_pixels: int | None) -> PayloadTooLarge:
    setting = " (IMAGEHUB_MAX_INPUT_PIXELS)" if max_pixels else ""
    return PayloadTooLarge(f"{field}: {shown} is an image of {size}, over the limit of "
                           f"{max_pixels or Image.MAX_IMAGE_PIXELS} pixels{setting}")
