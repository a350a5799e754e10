"""EngineProcess: an engine's calls run in a child process; results, exceptions, relayed steps
and cancels cross the pipe; a stopped or killed child is reported."""

from __future__ import annotations

import io
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagehub.engines.process import EngineProcess, _ResultPickler
from imagehub.errors import GenerationCancelled, GenerationFailed


@pytest.fixture(scope="module")
def child() -> Iterator[EngineProcess]:
    process = EngineProcess("test-stepper", "engines.stepper:Stepper", (0.01,))
    yield process
    process.stop()


def test_calls_run_in_the_child_and_exceptions_come_back(child):
    assert child.call("pid") == child.pid != os.getpid()
    with pytest.raises(ValueError, match="no such model"):
        child.call("fail", "no such model")
    with pytest.raises(GenerationFailed, match="unpicklable result"):
        child.call("unpicklable")
    assert child.call("pid") == child.pid  # the child still serves


def test_images_come_back_through_shared_memory_that_is_freed(child):
    before = set(Path("/dev/shm").iterdir())

    images = child.call("images", 3)

    assert [(im.mode, im.size) for im in images] == [("RGB", (64, 48))] * 3
    assert [im.tobytes()[:3] for im in images] == [bytes([0, 1, 2]), bytes([1, 2, 3]), bytes([2, 3, 4])]
    assert images[2].tobytes() == bytes((i + 2) % 256 for i in range(64 * 48 * 3))
    assert set(Path("/dev/shm").iterdir()) == before  # every block unlinked


def test_the_result_pickler_sends_an_image_as_the_name_of_its_block():
    image = Image.frombytes("RGB", (64, 48), bytes(i % 251 for i in range(64 * 48 * 3)))
    buffer = io.BytesIO()
    _ResultPickler(buffer).dump(("ok", [image]))

    assert len(buffer.getvalue()) < 300  # the 9216 pixel bytes are not in it
    kind, [back] = pickle.loads(buffer.getvalue())
    assert kind == "ok" and back.tobytes() == image.tobytes()
    with pytest.raises(FileNotFoundError):  # loading it freed the block
        pickle.loads(buffer.getvalue())


def test_steps_reach_each_callback_in_order(child):
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: []}

    outcomes = child.call("generate_batch", 3, on_steps=[
        lambda s, t, n=n: seen[n].append((s, t)) for n in (0, 1)])

    assert outcomes == [3, 3]
    assert seen == {0: [(1, 3), (2, 3), (3, 3)], 1: [(1, 3), (2, 3), (3, 3)]}


def test_a_cancel_reaches_the_child_which_stops_reporting_that_request(child):
    seen: list[int] = []

    def cancel_at_two(step: int, total: int) -> None:
        seen.append(step)
        if step == 2:
            raise GenerationCancelled("job-0")

    outcomes = child.call("generate_batch", 50, on_steps=[cancel_at_two, lambda s, t: None])

    assert isinstance(outcomes[0], GenerationCancelled) and str(outcomes[0]) == "job-0"
    assert seen == [1, 2]
    assert outcomes[1] == 50
    steps_run, reported = child.call("last_batch")
    assert steps_run == 50 and reported[1] == 50
    assert 2 <= reported[0] <= 5  # the child heard within a step or so (10 ms each), not at 50


def test_a_cancel_at_the_last_step_wins_and_the_next_call_is_not_disturbed(child):
    def cancel_at_last(step: int, total: int) -> None:
        if step == total:
            raise GenerationCancelled("late")

    outcomes = child.call("generate_batch", 2, on_steps=[cancel_at_last])

    assert isinstance(outcomes[0], GenerationCancelled)  # the child's result (2) is dropped
    assert child.call("last_batch") == (2, [2])
    assert child.call("generate_batch", 2, on_steps=[lambda s, t: None]) == [2]


def test_when_every_request_cancels_the_child_stops_early():
    process = EngineProcess("test-stepper", "engines.stepper:Stepper", (0.01,))
    try:
        counted: list[int] = []

        def cancel(step: int, total: int) -> None:
            raise GenerationCancelled()

        def count_then_cancel(step: int, total: int) -> None:
            counted.append(step)
            if step == 1:
                raise GenerationCancelled()

        outcomes = process.call("generate_batch", 500, on_steps=[cancel, count_then_cancel])

        assert all(isinstance(o, GenerationCancelled) for o in outcomes)
        assert counted == [1]
        steps_run, _ = process.call("last_batch")
        assert steps_run <= 5  # of 500: it stopped once both cancels had come back
    finally:
        process.stop()
    assert not process.alive


def test_a_killed_child_is_reported_with_its_exit_code():
    process = EngineProcess("test-stepper", "engines.stepper:Stepper")
    pid = process.call("pid")
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(GenerationFailed, match=rf"test-stepper \(pid {pid}\) exited with code -9 during pid"):
        process.call("pid")
    assert not process.alive


def test_stop_kills_a_child_whose_call_runs_past_the_timeout_and_that_call_fails():
    process = EngineProcess("test-stepper", "engines.stepper:Stepper", (0.05,))
    outcome: list[BaseException | object] = []

    def long_call() -> None:
        try:
            outcome.append(process.call("generate_batch", 1000, on_steps=[lambda s, t: None]))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(0.3)  # the call is running (1000 steps of 50 ms)
    began = time.monotonic()
    process.stop(timeout=0.5)
    caller.join(10)

    assert time.monotonic() - began < 5
    assert not process.alive
    assert isinstance(outcome[0], GenerationFailed) and "exited with code -9" in str(outcome[0])
