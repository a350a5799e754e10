"""The batching tests again, served as on a GPU with the hand-off: each model in a process of its
own (``IMAGEHUB_ENGINE_PROCESS``) and the next batch sent at the last one's last step
(``IMAGEHUB_ENGINE_HANDOFF``): batches, per-job seeds, progress and cancel cross the process
boundary, with two batches at the model at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.test_batching import (  # noqa: F401 - collected here, against this module's server
    api,
    start_batching_server,
    test_a_cancel_inside_a_batch_leaves_the_others_running,
    test_queued_jobs_run_as_one_batch_with_solo_pixels_and_own_progress,
    test_sync_calls_and_queued_jobs_share_batches,
)

from imagehub.testing import ServerProcess, child_pids, write_catalog


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory: pytest.TempPathFactory,
                    tiny_sd_dir: Path) -> Iterator[ServerProcess]:
    proc = start_batching_server(tmp_path_factory.mktemp("process-hub"), tiny_sd_dir,
                                 IMAGEHUB_ENGINE_PROCESS="true", IMAGEHUB_ENGINE_HANDOFF="true")
    yield proc
    proc.stop()


def test_each_loaded_model_has_a_process_that_ends_with_the_server(
    tmp_path: Path, tiny_sd_dir: Path
) -> None:
    write_catalog(tmp_path, tiny_sd_dir, **{"tiny-sd-2": 2})
    server = ServerProcess(tmp_path, {"IMAGEHUB_ENGINE_PROCESS": "true"}).start()
    try:
        assert server.proc is not None
        assert child_pids(server.proc.pid, b"spawn_main") == []  # nothing loaded yet
        with server.client() as api:
            for model in ("tiny-sd", "tiny-sd-2"):
                answer = api.post("/api/ai/images/generate", json={"model": model, "prompt": "a cat"})
                assert answer.status_code == 200, answer.text
        children = child_pids(server.proc.pid, b"spawn_main")
        assert len(children) == 2
    finally:
        server.stop()
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
