"""fal.ai queue API: submit, poll status, read the result, cancel (``Authorization: Key ...``).

``POST {base}/{model}`` with the input → ``request_id`` and the request's ``status_url``,
``response_url`` and ``cancel_url``; ``GET`` the status until ``COMPLETED``, ``GET`` the response
for the result, ``PUT`` the cancel URL on cancel. fal's docs say to use the URLs it answers; one
on another origin than ``IMAGEHUB_FAL_BASE_URL`` (which would receive the key), or missing, is
made as fal's queue routes it: ``{base}/{app}/requests/{id}`` (``/status``, ``/cancel``), ``app``
being the model id's first two segments (``fal-ai/nano-banana-2/edit`` → ``fal-ai/nano-banana-2``).

Wire form: ``prompt``, ``num_images``, ``seed``, ``aspect_ratio`` (omitted for ``auto``: the
endpoint's own default), ``resolution`` (``512`` → ``0.5K``), ``safety_tolerance`` (fal takes the
same 1-6 scale), ``enable_web_search``, ``thinking_level``, ``output_format: png``; with input
images the ``/edit`` endpoint and ``image_urls`` (data URIs: PNG, a large photo JPEG).
"""

from __future__ import annotations

import asyncio
import json
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
    web_search,
)
from imagehub.engines.remote.http import provider_message
from imagehub.errors import GenerationCancelled

RESOLUTIONS = {"512": "0.5K", "1K": "1K", "2K": "2K", "4K": "4K"}
SAFETY_ERROR_TYPES = ("content_policy_violation", "safety", "nsfw")
FAILED_HEADER = "x-fal-error-type"
"""On a request fal gave up on (timeout, runner crash...): its error_type, as the body's too."""


class FalProvider(Provider):
    name, key_setting, url_setting, label = "fal", "fal_api_key", "fal_base_url", "fal.ai"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def endpoint(self, call: Call) -> str:
        """``fal-ai/nano-banana-2``, or its edit variant when the request carries images."""
        if call.request.input_images:
            return self.options.get("edit_model") or f"{self.model}/edit"
        return self.model

    def body(self, call: Call) -> dict[str, Any]:
        request, params = call.request, call.request.params
        body: dict[str, Any] = {"prompt": request.prompt, "num_images": request.num_images,
                                "seed": request.seed % 2**31, "output_format": "png"}
        if params.get("aspect_ratio", "auto") != "auto":
            body["aspect_ratio"] = params["aspect_ratio"]
        if params.get("resolution") in RESOLUTIONS:
            body["resolution"] = RESOLUTIONS[params["resolution"]]
        if params.get("safety_tolerance") is not None:
            body["safety_tolerance"] = str(params["safety_tolerance"])
        if "enable_web_search" in params or "google_search" in params:
            body["enable_web_search"] = web_search(params)
        if params.get("thinking_level"):
            body["thinking_level"] = params["thinking_level"]
        if request.input_images:
            body["image_urls"] = [data_uri(image) for image in request.input_images]
        return body

    async def generate(self, call: Call) -> list[Image.Image]:
        endpoint = self.endpoint(call)
        app = "/".join(endpoint.split("/")[:2])
        # 1. submit
        submitted = json_or_garbage(call, await call.http.request(
            "POST", f"{self.base_url}/{endpoint}", json=self.body(call), headers=self.auth_headers()),
            "the queue submit")
        require(isinstance(submitted, dict) and bool(submitted.get("request_id")), call,
                f"answered garbage to the queue submit (no request_id: {str(submitted)[:100]})")
        call.info["fal_request_id"] = submitted["request_id"]
        urls = self.request_urls(submitted, f"{self.base_url}/{app}/requests/{submitted['request_id']}")
        # 2. poll until done; a cancel here cancels at fal too
        try:
            await self.wait(call, urls["status_url"], submitted["request_id"])
        except GenerationCancelled:
            await self.cancel(call, urls["cancel_url"])
            raise
        # 3. the result; a request fal marked failed (after its own retries, up to 10) carries an
        # error_type: final, not retried here
        response = await call.http.request("GET", urls["response_url"], headers=self.auth_headers(),
                                           ok=lambda r: r.is_success or r.status_code == 422
                                           or FAILED_HEADER in r.headers)
        return await self.read(call, response)

    def request_urls(self, submitted: dict[str, Any], made: str) -> dict[str, str]:
        """The submit answer's status, response and cancel URLs; one missing or on another origin
        is made from ``made`` (the request's URL as fal's queue routes it)."""
        fallback = {"status_url": f"{made}/status", "response_url": made,
                    "cancel_url": f"{made}/cancel"}
        return {name: url if isinstance(url := submitted.get(name), str) and self.same_origin(url)
                else fallback[name] for name in fallback}

    async def wait(self, call: Call, status_url: str, request_id: str) -> None:
        while True:
            status = json_or_garbage(call, await call.http.request(
                "GET", status_url, headers=self.auth_headers()), "a status poll")
            state = status.get("status") if isinstance(status, dict) else None
            require(state in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED"), call,
                    f"answered garbage to a status poll (status {state!r})")
            if state == "COMPLETED":
                return
            call.check_deadline(f"request {request_id}")
            await asyncio.sleep(call.poll_seconds)
            call.step()

    async def cancel(self, call: Call, cancel_url: str) -> None:
        """Best effort: one PUT, short timeout; the job is cancelled here whatever fal answers."""
        try:
            response = await call.http.client.put(cancel_url, headers=self.auth_headers(),
                                                  timeout=5.0)
            call.info["fal_cancel_status"] = response.status_code
        except httpx.HTTPError:
            pass

    async def read(self, call: Call, response: httpx.Response) -> list[Image.Image]:
        if not response.is_success and FAILED_HEADER in response.headers:
            raise call.http.error(f"HTTP {response.status_code}: the request failed at fal "
                                  f"({response.headers[FAILED_HEADER]}: "
                                  f"{provider_message(response)}; fal retries such requests itself)")
        body = json_or_garbage(call, response, "the result")
        if response.status_code == 422:
            raise self.refusal(call, body)
        images = body.get("images") if isinstance(body, dict) else None
        require(isinstance(images, list), call, "answered garbage to the result (no images list)")
        if isinstance(body.get("description"), str) and body["description"]:
            call.info["text"] = [body["description"]]
        nsfw = body.get("has_nsfw_concepts") or []
        if not images and any(nsfw):
            raise SafetyBlocked(_blocked("has_nsfw_concepts", call))
        if not images:
            raise NoImage("fal returned no image (empty images list)")
        return [await self.download(call, str(item.get("url", ""))) for item in images]

    def refusal(self, call: Call, body: Any) -> Exception:
        """A 422 result: fal's validation errors (a fault) or its content policy (a safety block)."""
        details = body.get("detail") if isinstance(body, dict) else None
        details = details if isinstance(details, list) else [details]
        for item in details:
            kind = str(item.get("type", "")) if isinstance(item, dict) else str(item)
            if any(word in kind for word in SAFETY_ERROR_TYPES):
                return SafetyBlocked(_blocked(kind, call))
        return call.http.error(f"HTTP 422: {json.dumps(details)[:300]}")


def _blocked(kind: str, call: Call) -> str:
    tolerance = call.request.params.get("safety_tolerance")
    at = f" at tolerance {tolerance}" if tolerance is not None else ""
    return f"blocked by the safety filter ({kind}){at} (provider fal)"
