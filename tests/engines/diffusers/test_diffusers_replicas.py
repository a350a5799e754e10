"""DiffusersEngine with ``replicas``: copies of one model, each in a process of its own, taking
calls at once (on a GPU, one copy's host work overlaps another's device work)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from imagehub.engines.base import EngineResult, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.engines.diffusers.residency import RESIDENCY

from .test_diffusers_batching import TOLERANCE, as_array, request


@pytest.fixture(scope="module")
def two_copies(tiny_model: Callable[..., Path]) -> Iterator[DiffusersEngine]:
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", replicas=2)
    engine.load()
    yield engine
    engine.close()


def test_each_copy_has_a_process_of_its_own_and_the_same_pixels(two_copies, tiny_engine):
    pids = {child.pid for child in two_copies._children}
    requests = [request(1, "a red cat"), request(2, "a blue dog")]

    outcomes = [two_copies.generate_batch(requests, [no_progress] * 2) for _ in range(2)]
    in_thread = tiny_engine("sd").generate_batch(requests, [no_progress] * 2)

    assert len(pids) == 2 and all(child.alive for child in two_copies._children)
    for outcome in outcomes:
        for a, b in zip(outcome, in_thread, strict=True):
            assert np.abs(as_array(a) - as_array(b)).max() <= TOLERANCE


def test_a_call_runs_while_the_other_copy_is_busy(two_copies):
    """The first call's progress callback blocks (its copy's replies wait behind it); a second
    call still finishes, on the other copy. With one copy it would wait for the first."""
    in_first_step, release = threading.Event(), threading.Event()
    first: list[object] = []

    def blocking(step: int, total: int) -> None:
        in_first_step.set()
        assert release.wait(60)

    thread = threading.Thread(target=lambda: first.extend(
        two_copies.generate_batch([request(1)], [blocking])))
    thread.start()
    try:
        assert in_first_step.wait(60)
        second = two_copies.generate_batch([request(2)], [no_progress])
        assert not release.is_set() and thread.is_alive()  # the first is still held
        assert isinstance(second[0], EngineResult)
    finally:
        release.set()
        thread.join(60)
    assert isinstance(first[0], EngineResult)


def test_copies_are_counted_in_the_memory_budget_and_unloaded_together(tiny_model):
    one = DiffusersEngine(str(tiny_model("sd")), device="cpu", process=True)
    two = DiffusersEngine(str(tiny_model("sd")), device="cpu", replicas=2)
    before = RESIDENCY.used_bytes("cpu")
    try:
        one.load()
        one_bytes = RESIDENCY.used_bytes("cpu") - before
        one.unload()
        two.load()
        children = list(two._children)

        assert one_bytes > 0 and RESIDENCY.used_bytes("cpu") - before == 2 * one_bytes
        two.unload()
        assert not two.loaded and not any(child.alive for child in children)
        assert RESIDENCY.used_bytes("cpu") == before
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize(("options", "message"), [
    ({"replicas": 0}, "replicas must be a whole number of at least 1, not 0"),
    ({"replicas": "2"}, "replicas must be a whole number of at least 1, not '2'"),
    ({"replicas": 2, "process": False}, "replicas = 2 needs a process per copy"),
])
def test_bad_replicas_are_refused(tiny_model, options, message):
    with pytest.raises(ValueError, match=message):
        DiffusersEngine(str(tiny_model("sd")), device="cpu", **options)
