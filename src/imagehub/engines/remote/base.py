"""What every remote provider shares: the provider contract, one call's context, image helpers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from PIL import Image

from imagehub.config import Settings
from imagehub.engines.base import EngineRequest, StepCallback
from imagehub.engines.remote.http import ProviderHTTP
from imagehub.errors import GenerationFailed, ImagehubError, UpstreamError
from imagehub.services.fetch import ImageFetcher
from imagehub.storage import images

T = TypeVar("T")


class SafetyBlocked(GenerationFailed):
    """The provider's safety filter refused the prompt or the image: the generation fails, and no
    other provider is tried (a refusal is an answer, not an outage)."""


class NoImage(GenerationFailed):
    """The provider answered without an image (text only, empty list): the chain tries the next."""


class ModelNotFound(UpstreamError):
    """The provider has no model of the code asked for (retired, or never was)."""


@dataclass
class Call:
    """One generation at one provider: the request, its HTTP side, progress and the deadline."""

    request: EngineRequest
    http: ProviderHTTP
    on_step: StepCallback
    poll_seconds: float
    fetcher: ImageFetcher
    info: dict[str, Any] = field(default_factory=dict)
    """Provider facts recorded on the row (remote ids, native sizes, text the model returned)."""
    _steps: int = 0

    def step(self) -> None:
        """Report one more poll: ``on_step(k, k + 1)`` (a remote job's length is unknown), which
        raises GenerationCancelled when the job was cancelled."""
        self._steps += 1
        self.on_step(self._steps, self._steps + 1)

    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.http.deadline:
            raise self.http.error(f"{what} did not finish before the deadline "
                                  "(IMAGEHUB_PROVIDER_DEADLINE_SECONDS)")

    async def watch(self, work: Awaitable[T]) -> T:
        """Await ``work`` while checking for cancel every poll interval; cancel aborts the HTTP call."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.poll_seconds)
                if done:
                    return task.result()
                self.step()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class Provider(ABC):
    """One provider (Gemini, fal.ai, an Oxen hub...) serving one model code."""

    name: str = ""
    """``gemini``, ``fal``, ``oxen``, ``openai``: recorded as ``provider`` on the row."""
    key_setting: str = ""
    """The Settings attribute holding the key (``gemini_api_key``)."""
    url_setting: str = ""
    label: str = ""
    takes_fallback_codes = False
    """Whether ``<provider>_model`` may list codes to try in turn when one is not found."""

    def __init__(self, settings: Settings, model: str | list[str], **options: Any) -> None:
        self.settings = settings
        codes = [model] if isinstance(model, str) else model
        if not isinstance(codes, list) or not codes or \
                not all(isinstance(code, str) and code for code in codes):
            raise ValueError(f"{self.name}_model: {model!r} must be a model code (a string)"
                             + (" or a list of them" if self.takes_fallback_codes else ""))
        if len(codes) > 1 and not self.takes_fallback_codes:
            raise ValueError(f"{self.name}_model: {model!r} must be one model code (a string)")
        self.codes: list[str] = codes
        """The model codes, in the order to try them."""
        self.model = codes[0]
        """The code in use: the first, or the one that last answered."""
        self.options = options
        secret = getattr(settings, self.key_setting)
        self.key = secret.get_secret_value() if secret is not None else ""
        self.base_url = str(getattr(settings, self.url_setting)).rstrip("/")

    @property
    def env_var(self) -> str:
        return f"IMAGEHUB_{self.key_setting.upper()}"

    def configured(self) -> bool:
        return bool(self.key)

    def same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

    @abstractmethod
    async def generate(self, call: Call) -> list[Image.Image]:
        """The images of ``call.request``; SafetyBlocked, NoImage or UpstreamError otherwise."""

    async def download(self, call: Call, url: str) -> Image.Image:
        """A result image by URL: the provider's own origin directly; any other host through the
        SSRF-checked fetcher (a provider must not make us read our own network)."""
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            return decode_image(call, payload, what=f"data URI ({header[:40]})")
        if self.same_origin(url):
            response = await call.http.request("GET", url, headers=self.auth_headers())
            return decode_bytes(call, response.content, what=url)
        try:
            return await asyncio.to_thread(call.fetcher.fetch, "result image", url)
        except ImagehubError as exc:
            raise call.http.error(f"its result image could not be fetched: {exc.detail}") from exc

    def auth_headers(self) -> dict[str, str]:
        return {}


UPLOAD_PNG_MAX_BYTES = 4 * 1024 * 1024
"""An input image whose PNG is larger than this (a photo, most often) goes to the provider as a
JPEG at quality 95 instead, unless it has transparency. Providers bound a request's size (Gemini:
20 MB of inline data in all), and a 12-megapixel photo is about 20 MB as a PNG, 3 MB as a JPEG."""


def encode_upload(image: Image.Image) -> tuple[str, bytes]:
    """An input image as the provider gets it: ``(mime type, bytes)``."""
    png = images.encode_png(image)
    if len(png) <= UPLOAD_PNG_MAX_BYTES or _has_alpha(image):
        return "image/png", png
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95, subsampling=0)
    return "image/jpeg", buffer.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def encode_upload_b64(image: Image.Image) -> tuple[str, str]:
    mime, data = encode_upload(image)
    return mime, base64.b64encode(data).decode()


def data_uri(image: Image.Image) -> str:
    mime, data = encode_upload_b64(image)
    return f"data:{mime};base64,{data}"


def decode_image(call: Call, payload: str, what: str) -> Image.Image:
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise call.http.error(f"answered an image that is not base64 ({what})") from exc
    return decode_bytes(call, raw, what)


def decode_bytes(call: Call, raw: bytes, what: str) -> Image.Image:
    """A provider's image, read as a client's input image is (``storage.images.decode_image``):
    only PNG/JPEG/WebP/GIF/BMP are parsed, and the pixel limit is checked before a pixel is
    decoded. A provider's bad image is its failure (UpstreamError, 502), not the client's."""
    try:
        return images.decode_image(what, f"({len(raw)} bytes)", raw)
    except ImagehubError as exc:
        raise call.http.error(f"answered an unusable image: {exc.detail}") from exc


def web_search(params: dict[str, Any]) -> bool:
    """``google_search`` (the later name) wins over ``enable_web_search`` when both are given."""
    if params.get("google_search") is not None:
        return bool(params["google_search"])
    return bool(params.get("enable_web_search", False))


def json_or_garbage(call: Call, response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise call.http.error(f"answered garbage to {what} (not JSON: {response.text[:80]!r})") from exc


def require(condition: bool, call: Call, message: str) -> None:
    if not condition:
        raise UpstreamError(call.http.scrub(f"{call.http.provider}: {message}"))
