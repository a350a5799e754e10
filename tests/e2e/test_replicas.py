"""A model served by two copies (``replicas = 2``, each in a process of its own): two queued jobs
run at once, their progress interleaved, with the server's default ``WORKER_CONCURRENCY`` of 1
(raised to two workers per copy); each job still gets its own images."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.test_events import StreamReader, _for

from imagehub.testing import ServerProcess, child_pids

CARD = '''[models.{name}]
backend = "diffusers"
source = "{source}"
device = "cpu"
{extra}
[models.{name}.defaults]
num_inference_steps = 30
resolution = "512"
'''


def _steps_in_order(tmp_path: Path, tiny_sd_dir: Path, extra: str) -> tuple[list[str], int]:
    """Two jobs queued at once: whose progress event came when, and the model's processes."""
    tmp_path.mkdir()
    (tmp_path / "models.toml").write_text(CARD.format(name="two", source=tiny_sd_dir, extra=extra))
    server = ServerProcess(tmp_path, {"IMAGEHUB_PRELOAD_MODELS": "two"}).start(timeout=180)
    try:
        assert server.proc is not None
        processes = len(child_pids(server.proc.pid, b"spawn_main"))
        stream = StreamReader(server)
        with server.client() as api:
            ids = [api.post("/api/ai/queue", json={"model": "two", "prompt": p}).json()[
                "generations"][0]["generation_id"] for p in ("a red cat", "a blue dog")]
            for gen_id in ids:
                done = stream.wait(_for(gen_id, "media_generation_completed"), timeout=180)
                assert done["data"]["status"] == "succeeded"
                assert api.get(done["data"]["url"]).status_code == 200
        stream.close()
        order = [e["data"]["generation_id"] for e in stream.events
                 if e["event"] == "media_generation_progress"]
        return ["a" if gen_id == ids[0] else "b" for gen_id in order], processes
    finally:
        server.stop()


def _switches(order: list[str]) -> int:
    return sum(1 for x, y in zip(order, order[1:], strict=False) if x != y)


@pytest.mark.timeout(400)
def test_two_copies_run_two_jobs_at_once_and_one_copy_runs_them_in_turn(
        tmp_path: Path, tiny_sd_dir: Path) -> None:
    two, two_processes = _steps_in_order(tmp_path / "two", tiny_sd_dir, "replicas = 2")
    one, one_processes = _steps_in_order(tmp_path / "one", tiny_sd_dir, "process = true")

    assert (two_processes, one_processes) == (2, 1)
    assert sorted(two) == sorted(one) == ["a"] * 30 + ["b"] * 30
    assert _switches(one) == 1  # one copy: all of one job's steps, then the other's
    assert _switches(two) >= 4, two  # two copies: their steps interleave
