"""A full disk where images are stored, for real: a small tmpfs mounted as the data dir's
``files/``, filled up. Queued generations fail saying why (none stays ``processing``), a sync call
is a 507 that loses nothing else, ``/readyz`` is not ready; once there is room, it serves again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess, write_catalog


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/files`` on a 4 MiB tmpfs (these tests run as root, as CI does)."""
    files = tmp_path / "files"
    files.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(files)], check=True)
    try:
        yield files
    finally:
        subprocess.run(["umount", "-l", str(files)], check=False)


def _fill(files: Path) -> Path:
    """Leave under 8 KiB free: no 512² PNG of the tiny model's noise fits."""
    filler = files / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # full
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_fails_generations_saying_why_and_serving_resumes_with_room(
        tmp_path: Path, tiny_sd_dir: Path, small_disk: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir)
    server = ServerProcess(tmp_path).start()
    try:
        with server.client() as api:
            filler = _fill(small_disk)
            queued = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "a",
                                                     "num_generations": 2})
            assert queued.status_code == 200, queued.text
            for generation in queued.json()["generations"]:
                row = wait_for_status(api, generation["generation_id"], {"failed", "succeeded"})
                assert row["status"] == "failed"
                assert "could not store" in row["error_message"]
                assert "No space left on device" in row["error_message"]
                assert not (small_disk / generation["generation_id"]).exists()

            sync = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "b"})
            assert sync.status_code == 507, sync.text
            assert sync.json()["error"]["type"] == "insufficient_storage"
            assert "No space left on device" in sync.json()["error"]["detail"]
            history = api.get("/api/ai/generations", params={"page_size": 5}).json()
            assert [g["status"] for g in history["generations"]] == ["failed"] * 3

            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["storage"].startswith("full: ")
            metrics = httpx.get(f"{server.url}/metrics").text
            free = next(line for line in metrics.splitlines()
                        if line.startswith("imagehub_storage_free_bytes "))
            assert float(free.split()[1]) < 8192

            filler.unlink()
            again = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "c"})
            assert again.status_code == 200, again.text
            assert httpx.get(again.json()["image_url"]).status_code == 200
            assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        server.stop()
