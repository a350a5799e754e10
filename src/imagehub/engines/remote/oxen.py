"""Passthrough to an upstream Oxen-compatible hub (hub.oxen.ai, or another imagehub).

``POST {base}/api/ai/queue`` with the model's fields and ``num_generations`` (Bearer key), then
``GET {base}/api/ai/queue/{id}`` every poll interval until each generation ends; ``result_url``
(and ``images[]`` where the upstream is an imagehub) is downloaded. A cancel here sends
``DELETE {base}/api/ai/queue/{id}`` upstream. Input images travel as PNG data URIs, the seed is
not forwarded (the upstream draws its own), everything else is forwarded as the caller sent it.

An upstream ``failed`` whose message speaks of a safety block is a safety block here too; any other
upstream failure is a provider fault (502, and the chain may try the next provider).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from PIL import Image

from imagehub.engines.remote.base import (
    Call,
    NoImage,
    Provider,
    SafetyBlocked,
    data_uri,
    json_or_garbage,
    require,
)
from imagehub.engines.remote.http import provider_message
from imagehub.errors import GenerationCancelled

NOT_FORWARDED = {"seed", "input_image"}
SAFETY_WORDS = ("safety", "blocked", "content policy", "moderation")


class OxenProvider(Provider):
    name, key_setting, url_setting, label = "oxen", "oxen_api_key", "oxen_base_url", "an Oxen hub"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def body(self, call: Call) -> dict[str, Any]:
        request = call.request
        body = {k: v for k, v in request.params.items() if k not in NOT_FORWARDED and v is not None}
        body.update(model=self.model, prompt=request.prompt, num_generations=request.num_images)
        if request.input_images:
            body["input_image"] = [data_uri(image) for image in request.input_images]
        return body

    async def generate(self, call: Call) -> list[Image.Image]:
        # 1. enqueue upstream
        response = await call.http.request("POST", f"{self.base_url}/api/ai/queue", json=self.body(call),
                                           headers=self.auth_headers(), ok=_success_or_unavailable)
        if not response.is_success:  # the upstream does not serve this model: no point retrying
            raise call.http.error(f"HTTP {response.status_code}: {provider_message(response)}")
        answer = json_or_garbage(call, response, "the enqueue")
        generations = answer.get("generations") if isinstance(answer, dict) else None
        require(isinstance(generations, list) and bool(generations)
                and all(isinstance(g, dict) and g.get("generation_id") for g in generations), call,
                f"answered garbage to the enqueue (no generations: {str(answer)[:100]})")
        ids = [str(g["generation_id"]) for g in generations]
        call.info["upstream_generation_ids"] = ids
        # 2. poll until every generation ends; a cancel here cancels upstream too
        try:
            rows = [await self.wait(call, generation_id) for generation_id in ids]
        except GenerationCancelled:
            await self.cancel(call, ids)
            raise
        # 3. the images
        images = []
        for row in rows:
            urls = [i.get("url") for i in row.get("images") or [] if isinstance(i, dict) and i.get("url")]
            urls = urls or ([row["result_url"]] if row.get("result_url") else [])
            if not urls:
                raise NoImage(f"the upstream hub returned no image for {row.get('generation_id')}")
            images += [await self.download(call, str(url)) for url in urls]
        return images

    async def wait(self, call: Call, generation_id: str) -> dict[str, Any]:
        while True:
            row = json_or_garbage(call, await call.http.request(
                "GET", f"{self.base_url}/api/ai/queue/{generation_id}", headers=self.auth_headers()),
                "a status poll")
            status = row.get("status") if isinstance(row, dict) else None
            require(status in ("queued", "processing", "succeeded", "failed", "cancelled"), call,
                    f"answered garbage to a status poll (status {status!r})")
            if status == "succeeded":
                return row
            if status == "failed":
                message = str(row.get("error_message") or "no message")
                if any(word in message.lower() for word in SAFETY_WORDS):
                    raise SafetyBlocked(f"{message} (provider oxen)")
                raise call.http.error(f"the upstream generation failed: {message}")
            if status == "cancelled":
                raise call.http.error(f"the upstream generation {generation_id} was cancelled there")
            call.check_deadline(f"generation {generation_id}")
            await asyncio.sleep(call.poll_seconds)
            call.step()

    async def cancel(self, call: Call, ids: list[str]) -> None:
        """Best effort: one DELETE per upstream generation, short timeout."""
        for generation_id in ids:
            try:
                await call.http.client.delete(f"{self.base_url}/api/ai/queue/{generation_id}",
                                              headers=self.auth_headers(), timeout=5.0)
            except httpx.HTTPError:
                pass


def _success_or_unavailable(response: httpx.Response) -> bool:
    """2xx, or the API.md 503 ``model_unavailable`` (permanent, unlike other 503s)."""
    if response.is_success:
        return True
    try:
        return response.status_code == 503 and response.json()["error"]["type"] == "model_unavailable"
    except (ValueError, KeyError, TypeError):
        return False
