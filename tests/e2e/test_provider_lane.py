"""Remote models run in workers of their own (``PROVIDER_CONCURRENCY``): with the default single
local engine slot, a provider taking its time (a fake Gemini answering after seconds) holds up
neither a queued nor a sync generation of a local model; a graceful stop puts the remote job it
was still waiting for back in the queue, as it does the local ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engines.remote.fakes import KEY, FakeGemini
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess, write_catalog

QUEUED_SECONDS, SYNC_SECONDS = 300, 20  # the queued call waits until the stop


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
        "IMAGEHUB_PROVIDER_MAX_RETRIES": "0", "IMAGEHUB_STOP_GRACE_SECONDS": "1"}).start()
    gemini.fault("timeout", seconds=QUEUED_SECONDS)  # the queued call's answer
    gemini.fault("timeout", seconds=SYNC_SECONDS)  # the sync call's
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
                                        {"succeeded", "failed"}, timeout=SYNC_SECONDS)
            sync = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "fast"})

            assert local_row["status"] == "succeeded" and sync.status_code == 200, sync.text
            assert "answer" not in remote_sync  # both remote calls still wait on the provider
            waiting.join(60)
            assert remote_sync["answer"].status_code == 200, remote_sync["answer"].text
            assert api.get(f"/api/ai/queue/{remote_id}").json()["status"] == "processing"
        server.stop()  # SIGTERM: the remote job is still waiting for its answer
        row = server.stored_row(remote_id)
        assert (row["status"], row["attempts"]) == ("queued", 0)
    finally:
        server.stop()
