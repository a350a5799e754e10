"""``RemoteEngine``: a model served by remote providers, tried in order (failover).

The card names its providers in order (``providers = ["gemini", "fal", "oxen"]``) and each one's
model code (``gemini_model``, ``fal_model``, ``oxen_model``). Providers without a key are skipped;
the first with a key serves. If it fails before producing an image (a provider fault, a timeout,
an answer without an image), the next is tried; a safety block or a cancel ends the generation at
once. ``EngineResult.info`` records ``provider`` (who served) and ``failover`` (who failed, why).

``generate`` is synchronous (worker threads call it): it runs the async httpx client in a fresh
event loop of its own (``asyncio.run``), so one thread's generation shares nothing with another's,
the ``n`` images of a Gemini call go out concurrently, and a cancel seen by ``on_step`` cancels the
in-flight request task instead of waiting for a blocking read to time out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import httpx

from imagehub.config import Settings
from imagehub.engines.base import EngineRequest, EngineResult, StepCallback
from imagehub.engines.remote.base import Call, NoImage, Provider, SafetyBlocked
from imagehub.engines.remote.fal import FalProvider
from imagehub.engines.remote.gemini import GeminiProvider
from imagehub.engines.remote.http import ProviderHTTP, RetryPolicy
from imagehub.engines.remote.openai import OpenAIProvider
from imagehub.engines.remote.oxen import OxenProvider
from imagehub.errors import GenerationFailed, UpstreamError
from imagehub.services.fetch import ImageFetcher

log = logging.getLogger(__name__)

PROVIDERS: dict[str, type[Provider]] = {"gemini": GeminiProvider, "fal": FalProvider, "oxen": OxenProvider,
                                        "openai": OpenAIProvider}

RESULT_MAX_BYTES = 256 * 1024 * 1024

GENERIC_PROPERTIES: dict[str, Any] = {
    "aspect_ratio": {"type": "string", "default": "auto", "x-order": 1,
                     "enum": ["auto", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5",
                              "5:4", "21:9"], "description": "Aspect ratio for the generated image"},
    "input_image": {"type": ["string", "array"], "items": {"type": "string"}, "x-order": 2,
                    "description": "Reference images: https URLs or data URIs."},
}
"""Fields of a remote card that declares none (a TOML card over a provider's model)."""


class RemoteEngine:
    """A provider chain behind the engine contract."""

    def __init__(self, settings: Settings, providers: list[str], models: dict[str, str],
                 backend: str = "remote", options: dict[str, dict[str, Any]] | None = None) -> None:
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown:
            raise ValueError(f"unknown providers {unknown}; known: {sorted(PROVIDERS)}")
        missing = [p for p in providers if not models.get(p)]
        if missing:
            raise ValueError(f"no model code for providers {missing} (set {missing[0]}_model)")
        self.backend = backend
        self.settings = settings
        self.providers = [PROVIDERS[p](settings, models[p], **(options or {}).get(p, {}))
                          for p in providers]
        self.policy = RetryPolicy(settings.provider_max_retries, settings.provider_backoff_seconds,
                                  settings.provider_backoff_max_seconds)
        self.fetcher = ImageFetcher(max_bytes=max(settings.fetch_max_bytes, RESULT_MAX_BYTES),
                                    timeout=settings.provider_timeout_seconds,
                                    allow=settings.fetch_allow.split(","))
        """For result images a provider hands out by URL on a host other than its own (fal's CDN):
        the same SSRF refusals as input images, a limit sized for 4K PNGs."""

    # ---- the contract ---------------------------------------------------------------------------

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in GENERIC_PROPERTIES.items()}

    def availability(self) -> str | None:
        if any(p.configured() for p in self.providers):
            return None
        keys = " or ".join(f"{p.env_var} ({p.label})" for p in self.providers)
        return f"this model runs at a remote provider, and no provider is configured: set {keys}"

    def fingerprint(self) -> str:
        chain = ",".join(f"{p.name}:{'|'.join(p.codes)}" for p in self.providers)
        return hashlib.sha256(chain.encode()).hexdigest()[:16]

    def load(self) -> None:
        """Nothing to load: a provider is an HTTP client built per generation."""

    def generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        return asyncio.run(self.agenerate(request, on_step))

    # ---- the chain ------------------------------------------------------------------------------

    async def agenerate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        ready = [p for p in self.providers if p.configured()]
        if not ready:
            raise UpstreamError(str(self.availability()))
        deadline = time.monotonic() + self.settings.provider_deadline_seconds
        failures: list[dict[str, str]] = []
        for provider in ready:
            started = time.monotonic()
            call = self._call(provider, request, on_step, deadline)
            try:
                async with call.http.client:
                    images = await provider.generate(call)
            except SafetyBlocked:
                raise
            except (UpstreamError, NoImage) as exc:
                message = str(getattr(exc, "detail", exc))
                log.warning("provider %s failed: %s", provider.name, message)
                failures.append({"provider": provider.name, "error": message,
                                 "kind": "no_image" if isinstance(exc, NoImage) else "upstream"})
                continue
            info = {"provider": provider.name, "provider_model": provider.model,
                    "http_requests": call.http.requests, "seconds": round(time.monotonic() - started, 3),
                    "native_sizes": [list(image.size) for image in images], **call.info}
            if failures:
                info["failover"] = failures
            return EngineResult(images=images, info=info)
        raise self._all_failed(failures)

    def _call(self, provider: Provider, request: EngineRequest, on_step: StepCallback,
              deadline: float) -> Call:
        timeout = self.settings.provider_timeout_seconds
        # trust_env: HTTPS_PROXY / SSL_CERT_FILE apply to provider calls (corporate egress); the
        # input-image fetcher ignores them, since it connects to the address it checked
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                   trust_env=True, follow_redirects=False)
        http = ProviderHTTP(client, provider.name, self.policy, deadline, secret=provider.key)
        return Call(request=request, http=http, on_step=on_step,
                    poll_seconds=self.settings.provider_poll_seconds, fetcher=self.fetcher)

    @staticmethod
    def _all_failed(failures: list[dict[str, str]]) -> Exception:
        summary = "; ".join(f["error"] for f in failures)
        if len(failures) > 1:
            summary = f"every provider failed: {summary}"
        if all(f["kind"] == "no_image" for f in failures):
            return GenerationFailed(summary)
        return UpstreamError(summary)
