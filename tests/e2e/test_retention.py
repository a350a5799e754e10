"""``IMAGEHUB_RETENTION_DAYS`` on a real server: ended generations past it are deleted (rows,
images, their links), and stored input images no open generation needs go an hour after they
were last written (the server sweeps at start, then at intervals)."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import httpx
from PIL import Image
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess, write_catalog

RETENTION_DAYS = 3 / 86400  # three seconds; the server then sweeps every second


def _data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gone(api: httpx.Client, generation_id: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/api/ai/queue/{generation_id}").status_code == 404:
            return True
        time.sleep(0.25)
    return False


def _deleted(server: ServerProcess, kind: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f'imagehub_retention_deleted_total{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_ended_generations_go_after_the_retention_and_unused_inputs_after_an_hour(
        tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir)
    server = ServerProcess(tmp_path, {"IMAGEHUB_RETENTION_DAYS": str(RETENTION_DAYS)}).start()
    try:
        with server.client() as api:
            sync = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "a"})
            assert sync.status_code == 200, sync.text
            queued = api.post("/api/ai/queue", json={  # strength 0: the input is the answer
                "model": "tiny-sd", "prompt": "b", "input_image": _data_uri(), "strength": 0})
            assert queued.status_code == 200, queued.text
            queued_id = queued.json()["generations"][0]["generation_id"]
            wait_for_status(api, queued_id, {"succeeded"})
            sync_id = sync.json()["generation_id"]
            files = tmp_path / "files"
            assert (files / sync_id).is_dir() and (files / queued_id).is_dir()
            (stored_input,) = (files / "inputs").iterdir()

            assert _gone(api, sync_id) and _gone(api, queued_id)

            assert httpx.get(sync.json()["image_url"]).status_code == 404
            assert not (files / sync_id).exists() and not (files / queued_id).exists()
            assert _deleted(server, "generations") >= 2
            assert stored_input.exists()  # written seconds ago: kept for the hour
        server.stop()

        hour_ago = time.time() - 3700
        os.utime(stored_input, (hour_ago, hour_ago))
        server.start()  # a sweep at start
        deadline = time.monotonic() + 20
        while stored_input.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not stored_input.exists()
        assert _deleted(server, "input_images") == 1
    finally:
        server.stop()
