"""OpenAI Images (``gpt-image-1``): ``POST {base}/v1/images/generations`` (JSON) and, with input
images, ``POST {base}/v1/images/edits`` (multipart, ``image[]``), ``Authorization: Bearer``.

Wire form: ``aspect_ratio`` → ``size`` (``auto``, ``1:1`` 1024x1024, ``3:2`` 1536x1024,
``2:3`` 1024x1536), ``quality`` as is, ``safety_tolerance`` → ``moderation`` (OpenAI has two levels:
``auto`` for 1-4, ``low`` for 5-6; generations only: the edits form takes no ``moderation``, so an
edit runs at OpenAI's standard level), ``n`` images in one call, ``output_format: png``. Images come back
as ``data[].b64_json``. A refusal by OpenAI's safety system (400, code ``moderation_blocked`` or
``content_policy_violation``) is a safety block.
"""

from __future__ import annotations

from typing import Any

import httpx
from PIL import Image

from imagehub.engines.remote.base import (
    Call,
    NoImage,
    Provider,
    SafetyBlocked,
    decode_image,
    encode_upload,
    json_or_garbage,
    require,
)
from imagehub.engines.remote.http import provider_message

SIZES = {"auto": "auto", "1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
SAFETY_CODES = ("moderation_blocked", "content_policy_violation")


def moderation(tolerance: Any) -> str:
    """``safety_tolerance`` 1-4 → ``auto`` (OpenAI's standard filter), 5-6 → ``low``."""
    return "low" if tolerance is not None and int(tolerance) >= 5 else "auto"


class OpenAIProvider(Provider):
    name, key_setting, url_setting, label = "openai", "openai_api_key", "openai_base_url", "OpenAI"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def fields(self, call: Call) -> dict[str, Any]:
        params = call.request.params
        fields: dict[str, Any] = {"model": self.model, "prompt": call.request.prompt,
                                  "n": call.request.num_images,
                                  "size": SIZES.get(params.get("aspect_ratio", "auto"), "auto"),
                                  "output_format": "png"}
        if not call.request.input_images:  # /v1/images/edits takes no moderation
            fields["moderation"] = moderation(params.get("safety_tolerance"))
        if params.get("quality"):
            fields["quality"] = params["quality"]
        return fields

    async def generate(self, call: Call) -> list[Image.Image]:
        accept = lambda r: r.is_success or r.status_code == 400
        fields = self.fields(call)
        if call.request.input_images:
            uploads = [encode_upload(image) for image in call.request.input_images]
            files = [("image[]", (f"{i}.{mime.split('/')[1]}", data, mime))
                     for i, (mime, data) in enumerate(uploads)]
            send = call.http.request("POST", f"{self.base_url}/v1/images/edits", ok=accept,
                                     data={k: str(v) for k, v in fields.items()}, files=files,
                                     headers=self.auth_headers())
        else:
            send = call.http.request("POST", f"{self.base_url}/v1/images/generations", ok=accept,
                                     json=fields, headers=self.auth_headers())
        response = await call.watch(send)
        if response.status_code == 400:
            raise self.refusal(call, response)
        body = json_or_garbage(call, response, "the images request")
        data = body.get("data") if isinstance(body, dict) else None
        require(isinstance(data, list), call, "answered garbage (no data list)")
        if not data:
            raise NoImage("openai returned no image (empty data list)")
        images = []
        for item in data:
            if isinstance(item, dict) and item.get("b64_json"):
                images.append(decode_image(call, str(item["b64_json"]), what="b64_json"))
            elif isinstance(item, dict) and item.get("url"):
                images.append(await self.download(call, str(item["url"])))
            else:
                raise NoImage("openai returned no image (an item without b64_json or url)")
        return images

    def refusal(self, call: Call, response: httpx.Response) -> Exception:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if isinstance(error, dict) and error.get("code") in SAFETY_CODES:
            tolerance = call.request.params.get("safety_tolerance")
            at = f" at tolerance {tolerance}" if tolerance is not None else ""
            return SafetyBlocked(f"blocked by the safety filter ({error['code']}){at} (provider openai)")
        return call.http.error(f"HTTP 400: {provider_message(response)}")
