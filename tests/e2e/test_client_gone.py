"""A sync call whose client closes the connection first (a client timeout, Ctrl-C, the ``openai``
SDK giving up and retrying) is cancelled at its next step instead of running for nobody; the
history keeps it, cancelled, saying why."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from conftest import ServerProcess
from tests_helpers import wait_for_status

STEPS = 150


def _abandoned_call(server: ServerProcess, prompt: str, timeout: float) -> None:
    """A sync generate whose client gives up after ``timeout`` seconds."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/api/ai/images/generate", timeout=timeout,
                   headers={"Authorization": f"Bearer {server.key}"},
                   json={"model": "tiny-sd-slow", "prompt": prompt, "num_inference_steps": STEPS})


def _row(api: httpx.Client, prompt: str, timeout: float = 60) -> dict[str, Any]:
    """The ended row of the one generation with ``prompt``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [row for row in api.get("/api/ai/generations", params={"page_size": 50}).json()
                ["generations"] if row["prompt"] == prompt]
        if rows:
            (row,) = rows
            return row
        time.sleep(0.1)
    raise AssertionError(f"no row for {prompt!r}")


def test_a_running_sync_call_stops_at_the_next_step_once_its_client_leaves(
        server: ServerProcess, api: httpx.Client) -> None:
    warm = api.post("/api/ai/images/generate", json={"model": "tiny-sd-slow", "prompt": "loads it",
                                                     "num_inference_steps": 1})
    assert warm.status_code == 200, warm.text  # loaded: the next call starts at once
    _abandoned_call(server, "nobody waits for this", timeout=2)
    row = _row(api, "nobody waits for this")
    assert row["status"] == "cancelled" and row["error_message"] is None, row
    why = server.stored_row(row["generation_id"])["error_message"]
    stopped = re.fullmatch(r"the client closed the connection; cancelled at step (\d+) of (\d+)",
                           str(why))
    assert stopped is not None, why
    assert int(stopped[1]) < int(stopped[2]) == STEPS
    # the model is free for the next caller at once
    made = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "next"})
    assert made.status_code == 200, made.text


def test_a_waiting_sync_call_is_withdrawn_once_its_client_leaves(
        server: ServerProcess, api: httpx.Client) -> None:
    """The only worker is busy with a queued job: the sync call waits, and its client leaves."""
    queued = api.post("/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "holds the worker",
                                             "num_inference_steps": STEPS})
    generation_id = queued.json()["generations"][0]["generation_id"]
    try:
        wait_for_status(api, generation_id, {"processing"})  # the worker is taken
        _abandoned_call(server, "left while waiting", timeout=1)
        row = _row(api, "left while waiting", timeout=10)  # not after the queued job's 150 steps
        assert row["status"] == "cancelled", row
        assert server.stored_row(row["generation_id"])["error_message"] == \
            "the client closed the connection before the call ran"
        assert api.get(f"/api/ai/queue/{generation_id}").json()["status"] in ("queued", "processing")
    finally:
        api.delete(f"/api/ai/queue/{generation_id}")
