"""Remote models run in workers of their own (``PROVIDER_CONCURRENCY``): with the default single
local engine slot, a provider taking its time (a fake Gemini answering after 8 s) holds up
neither a queued nor a sync generation of a local model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engines.remote.fakes import KEY, FakeGemini
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess, write_catalog

SLOW_SECONDS = 8


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()
    yield fake
    fake.stop()


def test_a_slow_provider_holds_up_no_local_model(tmp_path: Path, tiny_sd_dir: Path,
                                                 gemini: FakeGemini) -> None:
    write_catalog(tmp_path, tiny_sd_dir)
    server = ServerProcess(tmp_path, {
        "IMAGEHUB_GEMINI_API_KEY": KEY, "IMAGEHUB_GEMINI_BASE_URL": gemini.url,
        "IMAGEHUB_PROVIDER_MAX_RETRIES": "0"}).start()
    gemini.fault("timeout", times=2, seconds=SLOW_SECONDS)
    try:
        with server.client() as api:
            remote = api.post("/api/ai/queue", json={"model": "nano-banana-2", "prompt": "slow"})
            assert remote.status_code == 200, remote.text
            remote_id = remote.json()["generations"][0]["generation_id"]
            wait_for_status(api, remote_id, {"processing"})
            remote_sync: dict[str, httpx.Response] = {}
            waiting = threading.Thread(target=lambda: remote_sync.update(answer=api.post(
                "/api/ai/images/generate", json={"model": "nano-banana-2", "prompt": "slow too"},
                timeout=60)))
            waiting.start()

            local = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "fast"})
            local_row = wait_for_status(api, local.json()["generations"][0]["generation_id"],
                                        {"succeeded", "failed"}, timeout=SLOW_SECONDS)
            sync = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "fast"})

            assert local_row["status"] == "succeeded" and sync.status_code == 200, sync.text
            assert api.get(f"/api/ai/queue/{remote_id}").json()["status"] == "processing"
            assert "answer" not in remote_sync  # both remote calls still wait on the provider
            assert wait_for_status(api, remote_id, {"succeeded", "failed"})["status"] == "succeeded"
            waiting.join(60)
            assert remote_sync["answer"].status_code == 200, remote_sync["answer"].text
    finally:
        server.stop()
