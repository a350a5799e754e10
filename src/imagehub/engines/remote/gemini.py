"""Google Gemini: ``POST {base}/v1beta/models/{model}:generateContent`` (the Nano Banana models).

One request per image (image models answer one candidate); ``n`` requests run concurrently.
Wire form of imagehub's fields:

==================== =================================================================
imagehub             Gemini request
==================== =================================================================
prompt               ``contents[0].parts[0].text``
input_image          ``contents[0].parts[1..].inlineData`` (PNG, a large photo JPEG; base64)
aspect_ratio         ``generationConfig.imageConfig.aspectRatio``; omitted for ``auto``
resolution           ``generationConfig.imageConfig.imageSize`` (``512``, ``1K``, ``2K``, ``4K``)
enable_web_search /  ``tools: [{"google_search": {}}]`` when true
google_search
thinking_level       ``generationConfig.thinkingConfig.thinkingLevel``
safety_tolerance     ``safetySettings`` (:data:`SAFETY_THRESHOLDS`)
seed                 ``generationConfig.seed`` (mod 2^31)
==================== =================================================================

Images come back as ``candidates[0].content.parts[].inlineData``; thought images are skipped.

Google retires model codes (a preview's code when the model goes GA, a model when its successor
comes): ``gemini_model`` may list codes, and a code Google answers 404 for is passed over for the
next one, which is used from then on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PIL import Image

from imagehub.engines.remote.base import (
    Call,
    ModelNotFound,
    NoImage,
    Provider,
    SafetyBlocked,
    decode_image,
    encode_upload_b64,
    json_or_garbage,
    require,
    web_search,
)
from imagehub.engines.remote.http import provider_message

LOW, MEDIUM, HIGH, NONE = ("BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH",
                           "BLOCK_NONE")
STRICT_CATEGORIES = ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT")
OTHER_CATEGORIES = ("HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH")
SAFETY_THRESHOLDS: dict[str, tuple[str, str]] = {
    # tolerance: (sexually explicit + dangerous content, harassment + hate speech)
    "1": (LOW, LOW),
    "2": (LOW, MEDIUM),
    "3": (MEDIUM, MEDIUM),
    "4": (MEDIUM, HIGH),
    "5": (HIGH, HIGH),
    "6": (NONE, NONE),
}
"""``safety_tolerance`` → Gemini thresholds. 1 blocks at low probability of harm everywhere; each
step up loosens one group, sexual and dangerous content always as strict as or stricter than
harassment and hate; 6 sets ``BLOCK_NONE`` (Google's non-configurable filters still apply)."""

SAFETY_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT",
                 "BLOCKLIST", "SPII"}
IMAGE_SIZES = {"512": "512", "1K": "1K", "2K": "2K", "4K": "4K"}


def safety_settings(tolerance: str) -> list[dict[str, str]]:
    strict, other = SAFETY_THRESHOLDS[str(tolerance)]
    return ([{"category": c, "threshold": strict} for c in STRICT_CATEGORIES]
            + [{"category": c, "threshold": other} for c in OTHER_CATEGORIES])


class GeminiProvider(Provider):
    name, key_setting, url_setting, label = "gemini", "gemini_api_key", "gemini_base_url", "Google Gemini"
    takes_fallback_codes = True

    def body(self, call: Call, index: int) -> dict[str, Any]:
        """The generateContent request for the ``index``-th image of ``call``."""
        request, params = call.request, call.request.params
        parts: list[dict[str, Any]] = [{"text": request.prompt}]
        for image in request.input_images:
            mime, data = encode_upload_b64(image)
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
        image_config: dict[str, str] = {}
        if params.get("aspect_ratio", "auto") != "auto":
            image_config["aspectRatio"] = params["aspect_ratio"]
        if params.get("resolution") in IMAGE_SIZES:
            image_config["imageSize"] = IMAGE_SIZES[params["resolution"]]
        config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"],
                                  "seed": (request.seed + index) % 2**31}
        if image_config:
            config["imageConfig"] = image_config
        if params.get("thinking_level"):
            config["thinkingConfig"] = {"thinkingLevel": params["thinking_level"]}
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}],
                                "generationConfig": config}
        if web_search(params):
            body["tools"] = [{"google_search": {}}]
        if params.get("safety_tolerance") is not None:
            body["safetySettings"] = safety_settings(params["safety_tolerance"])
        return body

    async def generate(self, call: Call) -> list[Image.Image]:
        """The images from the code in use; if Google has no such model, from the next code."""
        gone: list[str] = []
        for code in [self.model] + [c for c in self.codes if c != self.model]:
            try:
                images = await self.generate_with(call, code)
            except ModelNotFound as exc:
                gone.append(exc.detail)
                continue
            self.model = code
            return images
        hint = "; the card's gemini_model names the codes to try" if len(self.codes) > 1 else \
            "; set gemini_model on the card to a code Google serves"
        raise call.http.error(" ".join(gone) + hint)

    async def generate_with(self, call: Call, code: str) -> list[Image.Image]:
        url = f"{self.base_url}/v1beta/models/{code}:generateContent"
        headers = {"x-goog-api-key": self.key}

        async def one(index: int) -> Image.Image:
            response = await call.http.request("POST", url, json=self.body(call, index), headers=headers,
                                               ok=lambda r: r.is_success or r.status_code == 404)
            if response.status_code == 404:
                raise ModelNotFound(f"HTTP 404 for {code}: {provider_message(response)}.")
            return self.read(call, json_or_garbage(call, response, "generateContent"))

        return list(await call.watch(asyncio.gather(*(one(i) for i in range(call.request.num_images)))))

    def read(self, call: Call, body: Any) -> Image.Image:
        """The first non-thought image of a generateContent answer; SafetyBlocked / NoImage."""
        require(isinstance(body, dict), call, "answered garbage (not a JSON object)")
        tolerance = call.request.params.get("safety_tolerance")
        feedback = body.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            raise SafetyBlocked(_blocked(feedback["blockReason"], feedback.get("safetyRatings"), tolerance))
        candidates = body.get("candidates") or []
        if not candidates:
            raise NoImage("gemini returned no image (no candidates)")
        candidate = candidates[0]
        require(isinstance(candidate, dict), call, "answered garbage (candidate is not an object)")
        finish = candidate.get("finishReason", "")
        if finish in SAFETY_FINISH:
            raise SafetyBlocked(_blocked(finish, candidate.get("safetyRatings"), tolerance))
        texts, image = [], None
        for part in (candidate.get("content") or {}).get("parts") or []:
            inline = part.get("inlineData") or part.get("inline_data")
            if inline and str(inline.get("mimeType", inline.get("mime_type", ""))).startswith("image/"):
                if not part.get("thought") and image is None:
                    image = decode_image(call, str(inline.get("data", "")), what="inlineData")
            elif part.get("text") and not part.get("thought"):
                texts.append(part["text"])
        if texts:
            call.info.setdefault("text", []).extend(texts)
        if image is None:
            said = f"; it said: {' '.join(texts)[:200]!r}" if texts else ""
            raise NoImage(f"gemini returned no image (finishReason {finish or 'missing'}){said}")
        return image


def _blocked(reason: str, ratings: Any, tolerance: Any) -> str:
    flagged = [r.get("category", "?") for r in ratings or []
               if isinstance(r, dict) and (r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH"))]
    what = ", ".join([reason] + flagged)
    at = f" at tolerance {tolerance}" if tolerance is not None else ""
    return f"blocked by the safety filter ({what}){at} (provider gemini)"
