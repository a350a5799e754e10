"""A generation survives the server: kill -9 with jobs queued and processing, then restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import ServerProcess, write_catalog
from tests_helpers import wait_for_status


def _enqueue_and_kill_mid_run(server: ServerProcess, graceful: bool = False) -> tuple[list[str], str]:
    """Three slow jobs; kill -9 (or SIGTERM) once the first is past its first step. Returns
    (ids, running)."""
    with server.client() as api:
        ids = [g["generation_id"] for g in api.post(
            "/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "survive", "num_generations": 3}
        ).json()["generations"]]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = [api.get(f"/api/ai/queue/{i}").json() for i in ids]
            running = [r for r in rows if r["status"] == "processing" and (r.get("progress") or 0) > 0]
            if running:
                break
            time.sleep(0.05)
        assert running, rows
        assert sum(r["status"] == "queued" for r in rows) == 2
    if graceful:
        server.stop()
    else:
        server.kill()
    return ids, running[0]["generation_id"]


def test_kill_9_then_restart_runs_everything(tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir, **{"tiny-sd-slow": 15})
    server = ServerProcess(tmp_path).start()
    ids, interrupted = _enqueue_and_kill_mid_run(server)
    server.start()  # same data dir, new process
    try:
        with server.client() as api:
            rows = [wait_for_status(api, i, {"succeeded", "failed"}) for i in ids]
        assert [r["status"] for r in rows] == ["succeeded"] * 3
        assert server.stored_row(interrupted)["attempts"] == 2  # re-run once
    finally:
        server.stop()


def test_processing_job_fails_after_max_attempts(tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir, **{"tiny-sd-slow": 15})
    server = ServerProcess(tmp_path, {"IMAGEHUB_MAX_ATTEMPTS": "1"}).start()
    ids, interrupted = _enqueue_and_kill_mid_run(server)
    server.start()
    try:
        with server.client() as api:
            rows = {i: wait_for_status(api, i, {"succeeded", "failed"}) for i in ids}
        failed = rows[interrupted]
        assert failed["status"] == "failed"
        assert "stopped while this generation was processing" in failed["error_message"]
        assert "max_attempts=1" in failed["error_message"]
        assert [rows[i]["status"] for i in ids if i != interrupted] == ["succeeded"] * 2
    finally:
        server.stop()


def test_a_graceful_stop_puts_the_running_job_back_without_counting_an_attempt(
        tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir, **{"tiny-sd-slow": 60})  # seconds: longer than a stop
    server = ServerProcess(tmp_path, {"IMAGEHUB_MAX_ATTEMPTS": "1",
                                      "IMAGEHUB_STOP_GRACE_SECONDS": "0.2"}).start()
    ids, interrupted = _enqueue_and_kill_mid_run(server, graceful=True)  # SIGTERM

    # it ended by itself within ServerProcess.stop's 10 s (uvicorn re-raises the SIGTERM it
    # handled, so the status is -15), not by the kill that follows them
    assert server.proc is not None and server.proc.returncode == -15
    stopped = [server.stored_row(i) for i in ids]
    assert [r["status"] for r in stopped] == ["queued"] * 3
    assert [r["attempts"] for r in stopped] == [0, 0, 0] and stopped[0]["started_at"] is None
    server.start()
    try:
        with server.client() as api:
            rows = [wait_for_status(api, i, {"succeeded", "failed"}) for i in ids]
        # MAX_ATTEMPTS=1: a stop counted as a crash would have failed the interrupted job
        assert [r["status"] for r in rows] == ["succeeded"] * 3, rows
        assert server.stored_row(interrupted)["attempts"] == 1
    finally:
        server.stop()


@pytest.mark.parametrize("where", ["shared", "a"], ids=["a-folder-of-its-own", "the-first-data-dir"])
def test_a_second_data_dir_on_the_same_sqlite_database_runs_no_workers(
        tmp_path: Path, tiny_sd_dir: Path, where: str) -> None:
    """Two data dirs, one SQLite file: the second server would take the first's jobs. The file
    lies in a folder of its own (both set DATABASE_URL), or in the first's data dir (the first
    uses the default, the second points DATABASE_URL at it)."""
    import subprocess
    import sys

    database = tmp_path / where / "imagehub.db"
    write_catalog(tmp_path / "a", tiny_sd_dir)
    first_env = {"IMAGEHUB_DATABASE_URL": f"sqlite:///{database}"} if where == "shared" else {}
    first = ServerProcess(tmp_path / "a", first_env).start()
    try:
        env = {**os.environ, "IMAGEHUB_DATA_DIR": str(tmp_path / "b"),
               "IMAGEHUB_DATABASE_URL": f"sqlite:///{database}", "IMAGEHUB_PORT": "1"}
        second = subprocess.run([sys.executable, "-m", "imagehub", "serve"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        first.stop()

    assert second.returncode == 1, second.stderr
    assert second.stderr.startswith(f"error: the imagehub server at {first.url} (pid ")
    assert f"runs the workers of the database {database}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
