"""EngineProcess: an engine's calls run in a child process; results, exceptions, relayed steps
and cancels cross the pipe; a stopped or killed child is reported."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagehub.engines.process import EngineProcess, ImagePixels, _Blocks, _pack, _unpack
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


def test_images_come_back_through_one_reused_block_freed_when_the_child_stops():
    before = set(Path("/dev/shm").iterdir())
    process = EngineProcess("test-stepper", "engines.stepper:Stepper")
    try:
        for _ in range(5):
            images = process.call("images", 3)

            assert [(im.mode, im.size) for im in images] == [("RGB", (64, 48))] * 3
            assert [im.tobytes()[:3] for im in images] == [bytes([0, 1, 2]), bytes([1, 2, 3]),
                                                            bytes([2, 3, 4])]
            assert images[2].tobytes() == bytes((i + 2) % 256 for i in range(64 * 48 * 3))
            # the parent handed the block back before its next call: the child reuses it
            assert len(set(Path("/dev/shm").iterdir()) - before) == 1
    finally:
        process.stop()
    assert set(Path("/dev/shm").iterdir()) == before  # unlinked when the child ended


def test_a_replys_images_travel_in_one_block_named_in_a_small_pickle():
    images = [Image.frombytes("RGB", (64, 48), bytes((i + n) % 251 for i in range(64 * 48 * 3)))
              for n in range(3)]
    blocks = _Blocks()
    try:
        name, spans, payload = _pack(("ok", images), blocks)

        assert name is not None and spans == [(0, 9216), (9216, 9216), (18432, 9216)]
        assert len(payload) < 400  # the 3 x 9216 pixel bytes are not in it
        kind, back = _unpack(name, spans, payload)
        assert kind == "ok" and [im.tobytes() for im in back] == [im.tobytes() for im in images]
        blocks.give_back(name)
        assert _pack(("ok", images[:1]), blocks)[0] == name  # a smaller reply reuses the block
        assert _pack(("ok", 7), blocks) == (None, [], pickle.dumps(("ok", 7), 5))  # no images
    finally:
        blocks.close()
    assert not Path("/dev/shm", name.lstrip("/")).exists()


def test_numpy_arrays_travel_in_the_block_and_come_back_as_copies_of_their_own():
    # numpy's own out-of-band pickle would leave them pointing into the block, which then
    # cannot be closed: the reply failed ("cannot close exported pointers exist")
    batch = np.arange(3 * 48 * 64 * 3, dtype=np.uint8).reshape(3, 48, 64, 3)
    views = [batch[n] for n in range(3)]  # as an engine splits a batch: views of one array
    strided = batch.transpose(0, 2, 1, 3)[0]  # not contiguous: made so on its way
    blocks = _Blocks()
    try:
        name, spans, payload = _pack(("ok", [views, strided]), blocks)

        assert [length for _, length in spans] == [9216, 9216, 9216, 9216]
        assert len(payload) < 600  # the pixels are not in it
        kind, (back, back_strided) = _unpack(name, spans, payload)
        assert kind == "ok" and all(np.array_equal(b, v) for b, v in zip(back, views, strict=True))
        assert np.array_equal(back_strided, strided) and back_strided.shape == (64, 48, 3)
        blocks.give_back(name)
        _pack(("ok", [np.zeros_like(batch)]), blocks)  # the child writes its next reply over it
        assert all(np.array_equal(b, v) for b, v in zip(back, views, strict=True))
        back[0][0, 0, 0] = 99  # each is an array of its own, writable
        assert back[1][0, 0, 0] == views[1][0, 0, 0]
    finally:
        blocks.close()


def test_image_pixels_travel_in_the_block_and_arrive_as_pil_images():
    rgb = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    grey, rgba = rgb[..., 0], np.dstack([rgb, rgb[..., :1]])
    blocks = _Blocks()
    try:
        name, spans, payload = _pack(("ok", [ImagePixels(a) for a in (rgb, grey, rgba)]), blocks)

        assert [length for _, length in spans] == [9216, 3072, 12288] and len(payload) < 600
        kind, back = _unpack(name, spans, payload)
        assert kind == "ok"
        assert [(im.mode, im.size) for im in back] == [("RGB", (64, 48)), ("L", (64, 48)),
                                                       ("RGBA", (64, 48))]
        assert [np.array_equal(np.asarray(im), a) for im, a in zip(back, (rgb, grey, rgba))] == [
            True, True, True]
    finally:
        blocks.close()
    with pytest.raises(ValueError, match=r"8-bit H x W \(x 3 or 4\) pixels, not float32"):
        ImagePixels(rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"not uint8 \(48, 64, 2\)"):
        ImagePixels(rgb[..., :2])


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


def _in_thread(call) -> tuple[threading.Thread, list[object]]:
    """``call()`` on a thread of its own; its outcome (or exception) lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_two_calls_run_at_once_and_each_gets_its_own_steps_and_cancel(child):
    long_steps: list[int] = []
    short_steps: list[int] = []
    finished: list[str] = []

    def long_cancel_at_three(step: int, total: int) -> None:
        long_steps.append(step)
        if step == 3:
            raise GenerationCancelled("long-0")

    def long_call() -> list[object]:
        outcome = child.call("generate_batch", 40, on_steps=[long_cancel_at_three, lambda s, t: None])
        finished.append("long")
        return outcome

    def short_call() -> list[object]:
        outcome = child.call("generate_batch", 5, on_steps=[lambda s, t: short_steps.append(s)])
        finished.append("short")
        return outcome

    long_thread, long_outcome = _in_thread(long_call)
    time.sleep(0.1)  # the long call (40 steps of 10 ms) is running
    short_thread, short_outcome = _in_thread(short_call)
    short_thread.join(10)
    long_thread.join(10)

    assert finished == ["short", "long"]  # the short call did not wait for the long one
    assert short_outcome == [[5]] and short_steps == [1, 2, 3, 4, 5]  # the cancel was not its
    [(cancelled, completed)] = long_outcome
    assert isinstance(cancelled, GenerationCancelled) and str(cancelled) == "long-0"
    assert completed == 40 and long_steps == [1, 2, 3]


def test_a_killed_child_fails_every_call_in_flight():
    process = EngineProcess("test-stepper", "engines.stepper:Stepper", (0.05,))
    try:
        calls = [_in_thread(lambda: process.call("generate_batch", 1000, on_steps=[lambda s, t: None]))
                 for _ in range(2)]
        time.sleep(0.5)  # both are running
        os.kill(process.pid, signal.SIGKILL)
        for thread, _ in calls:
            thread.join(10)

        for _, outcome in calls:
            assert isinstance(outcome[0], GenerationFailed) and "exited with code -9" in str(outcome[0])
        with pytest.raises(GenerationFailed, match="exited with code -9 during pid"):
            process.call("pid")
    finally:
        process.stop()


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


def test_a_killed_child_is_reported_with_its_exit_code_and_its_blocks_are_freed():
    before = set(Path("/dev/shm").iterdir())
    process = EngineProcess("test-stepper", "engines.stepper:Stepper")
    pid = process.call("pid")
    process.call("images", 2)  # the child now holds a block
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(GenerationFailed, match=rf"test-stepper \(pid {pid}\) exited with code -9 during pid"):
        process.call("pid")
    assert not process.alive
    assert set(Path("/dev/shm").iterdir()) == before  # the server unlinked what the child left


def test_stop_kills_a_child_whose_call_runs_past_the_timeout_and_that_call_fails():
    process = EngineProcess("test-stepper", "engines.stepper:Stepper", (0.05,))
    caller, outcome = _in_thread(
        lambda: process.call("generate_batch", 1000, on_steps=[lambda s, t: None]))
    time.sleep(0.3)  # the call is running (1000 steps of 50 ms)
    began = time.monotonic()
    process.stop(timeout=0.5)
    caller.join(10)

    assert time.monotonic() - began < 5
    assert not process.alive
    assert isinstance(outcome[0], GenerationFailed) and "exited with code -9" in str(outcome[0])
