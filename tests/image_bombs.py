"""Small files that declare huge images (decompression bombs), and a loopback host serving them,
for the input-image tests."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from engines.remote.fakes import ImageHost, Received, Reply
from PIL import Image


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is rewritten to declare ``width`` x ``height`` (CRC fixed):
    under 100 bytes, yet Pillow would allocate width*height pixels to decode it."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def data_uri(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


class BombHost(ImageHost):
    """ImageHost plus ``/bomb.png`` (a PNG declaring 20000x20000) and ``/junk.png`` (not one)."""

    def route(self, request: Received) -> Reply:
        if request.path == "/bomb.png":
            return Reply(200, raw=png_declaring(20000, 20000), content_type="image/png")
        if request.path == "/junk.png":
            return Reply(200, raw=b"not an image at all", content_type="image/png")
        return super().route(request)
