"""DiffusersEngine with ``replicas``: copies of one model, each in a process of its own, taking
calls at once (on a GPU, one copy's host work overlaps another's device work)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests_helpers import raised

from imagehub.config import Settings
from imagehub.engines.base import EngineResult, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.engines.diffusers.residency import RESIDENCY
from imagehub.engines.registry import create_engine
from imagehub.errors import GenerationFailed, ModelUnavailable
from imagehub.testing import child_pids

from .test_diffusers_batching import TOLERANCE, as_array, request


@pytest.fixture(scope="module")
def two_copies(tiny_model: Callable[..., Path]) -> Iterator[DiffusersEngine]:
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", replicas=2)
    engine.load()
    yield engine
    engine.close()


def pids(engine: DiffusersEngine) -> list[int | None]:
    return [copy.process.pid for copy in engine._copies]


def test_each_copy_has_a_process_of_its_own_and_the_same_pixels(two_copies, tiny_engine):
    requests = [request(1, "a red cat"), request(2, "a blue dog")]

    outcomes = [two_copies.generate_batch(requests, [no_progress] * 2) for _ in range(2)]
    in_thread = tiny_engine("sd").generate_batch(requests, [no_progress] * 2)

    assert len(set(pids(two_copies))) == 2 and os.getpid() not in pids(two_copies)
    assert all(copy.process.alive for copy in two_copies._copies)
    for outcome in outcomes:
        for a, b in zip(outcome, in_thread, strict=True):
            assert np.abs(as_array(a) - as_array(b)).max() <= TOLERANCE
    assert [copy.calls for copy in two_copies._copies] == [0, 0]  # none left counted


def test_a_call_runs_while_the_other_copy_is_busy(two_copies):
    """The first call's progress callback blocks (its copy's replies wait behind it); a second
    call still finishes, on the other copy. With one copy it would wait for the first."""
    in_first_step, release = threading.Event(), threading.Event()
    first: list[object] = []
    second: list[object] = []

    def blocking(step: int, total: int) -> None:
        in_first_step.set()
        assert release.wait(60)

    one = threading.Thread(target=lambda: first.extend(
        two_copies.generate_batch([request(1)], [blocking])))
    two = threading.Thread(target=lambda: second.extend(
        two_copies.generate_batch([request(2)], [no_progress])))
    one.start()
    try:
        assert in_first_step.wait(60)
        two.start()
        two.join(60)
        assert not two.is_alive(), "the second call waited for the first copy"
        assert not release.is_set() and one.is_alive()  # the first is still held
        assert isinstance(second[0], EngineResult)
    finally:
        release.set()
        one.join(60)
        two.join(60)
    assert isinstance(first[0], EngineResult)


def test_a_copy_that_dies_fails_its_call_alone_and_another_loads_in_its_place(two_copies):
    dead, alive = pids(two_copies)
    bytes_before = RESIDENCY.used_bytes("cpu")
    os.kill(dead, signal.SIGKILL)

    with pytest.raises(GenerationFailed, match=rf"pid {dead}\) exited with code -9"):
        two_copies.generate(request(1), no_progress)  # the least busy copy: the first
    assert pids(two_copies) == [alive]  # the other serves on
    assert isinstance(two_copies.generate(request(2), no_progress), EngineResult)
    deadline = time.monotonic() + 120
    while len(two_copies._copies) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert len(two_copies._copies) == 2 and pids(two_copies)[0] == alive
    assert dead not in pids(two_copies)
    assert RESIDENCY.used_bytes("cpu") == bytes_before
    assert all(isinstance(two_copies.generate(request(n), no_progress), EngineResult)
               for n in (3, 4))


def test_one_copy_failing_to_load_ends_the_others(tiny_model):
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", replicas=2)
    before = set(child_pids(os.getpid(), b"spawn_main"))
    outcome: list[BaseException | None] = []
    loading = threading.Thread(target=lambda: outcome.append(raised(engine.load)))
    loading.start()
    deadline = time.monotonic() + 30
    while len(new := set(child_pids(os.getpid(), b"spawn_main")) - before) < 2 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(new) == 2, "the copies' processes did not start"
    os.kill(min(new), signal.SIGKILL)  # while both import torch and load (seconds)
    loading.join(60)

    assert isinstance(outcome[0], ModelUnavailable) and "exited with code -9" in str(outcome[0])
    assert not engine.loaded
    assert not set(child_pids(os.getpid(), b"spawn_main")) & new  # the other one ended too


def test_copies_are_counted_in_the_memory_budget_and_unloaded_together(tiny_model):
    one = DiffusersEngine(str(tiny_model("sd")), device="cpu", process=True)
    two = DiffusersEngine(str(tiny_model("sd")), device="cpu", replicas=2)
    before = RESIDENCY.used_bytes("cpu")
    try:
        one.load()
        one_bytes = RESIDENCY.used_bytes("cpu") - before
        one.unload()
        two.load()
        processes = [copy.process for copy in two._copies]

        assert one_bytes > 0 and RESIDENCY.used_bytes("cpu") - before == 2 * one_bytes
        two.unload()
        assert not two.loaded and not any(process.alive for process in processes)
        assert RESIDENCY.used_bytes("cpu") == before
    finally:
        one.close()
        two.close()


def test_a_card_asking_for_copies_gets_processes_whatever_engine_process_says(tiny_model):
    settings = Settings(engine_process=False)
    source = str(tiny_model("sd"))

    copies = create_engine("diffusers", {"source": source, "replicas": 2, "device": "cpu"}, settings)
    single = create_engine("diffusers", {"source": source, "device": "cpu"}, settings)

    assert copies.separate_process and not single.separate_process


@pytest.mark.parametrize(("options", "message"), [
    ({"replicas": 0}, "replicas must be a whole number of at least 1, not 0"),
    ({"replicas": "2"}, "replicas must be a whole number of at least 1, not '2'"),
    ({"replicas": True}, "replicas must be a whole number of at least 1, not True"),
    ({"replicas": 2, "process": False}, "replicas = 2 needs a process per copy"),
])
def test_bad_replicas_are_refused(tiny_model, options, message):
    with pytest.raises(ValueError, match=message):
        DiffusersEngine(str(tiny_model("sd")), device="cpu", **options)
