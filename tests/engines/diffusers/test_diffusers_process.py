"""DiffusersEngine with ``process = true``: the pipeline in a child process of its own, behind the
same contract (pixels, per-request progress and cancel, refusals, residency, unload, a crash)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests_helpers import raised

from imagehub.engines.base import EngineResult, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.engines.diffusers.residency import RESIDENCY
from imagehub.engines.process import ImagePixels
from imagehub.errors import GenerationCancelled, GenerationFailed, InvalidParams, ModelUnavailable
from imagehub.testing import child_pids

from .test_diffusers_batching import TOLERANCE, as_array, request
from .test_diffusers_img2img import request as img2img_request
from .test_diffusers_img2img import source_image


@pytest.fixture(scope="module")
def child_engine(tiny_model: Callable[..., Path]) -> Iterator[DiffusersEngine]:
    """One child-process engine for the module (a test that ends its process leaves a new one)."""
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", process=True)
    engine.load()
    yield engine
    engine.close()


def child_pid(engine: DiffusersEngine) -> int:
    assert engine._copies and engine._copies[0].process.pid is not None
    return engine._copies[0].process.pid


def test_a_child_process_renders_the_same_pixels_as_the_thread(child_engine, tiny_engine):
    requests = [request(1, "a red cat"), request(2, "a blue dog"), request(3, "a green ox")]

    in_child = child_engine.generate_batch(requests, [no_progress] * 3)
    in_thread = tiny_engine("sd").generate_batch(requests, [no_progress] * 3)

    assert child_pid(child_engine) != os.getpid()
    for a, b in zip(in_child, in_thread, strict=True):
        assert np.abs(as_array(a) - as_array(b)).max() <= TOLERANCE
    assert isinstance(in_child[0], EngineResult) and in_child[0].images[0].size == (256, 256)


def test_progress_and_a_cancel_cross_the_process_boundary(child_engine):
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: [], 2: []}

    def record(n: int) -> Callable[[int, int], None]:
        def on_step(step: int, total: int) -> None:
            seen[n].append((step, total))
            if n == 1 and step == 2:
                raise GenerationCancelled("job-1")
        return on_step

    requests = [request(seed, num_inference_steps=3) for seed in (1, 2, 3)]
    outcomes = child_engine.generate_batch(requests, [record(n) for n in range(3)])

    assert seen[0] == seen[2] == [(1, 3), (2, 3), (3, 3)]
    assert seen[1] == [(1, 3), (2, 3)]  # nothing after it left
    assert isinstance(outcomes[1], GenerationCancelled) and str(outcomes[1]) == "job-1"
    assert isinstance(outcomes[0], EngineResult) and isinstance(outcomes[2], EngineResult)


def test_a_refused_request_comes_back_alone(child_engine):
    outcomes = child_engine.generate_batch([request(1), request(2, num_images=9)], [no_progress] * 2)

    assert isinstance(outcomes[0], EngineResult)
    assert isinstance(outcomes[1], InvalidParams) and "num_images must be 1 to 4, not 9" in str(outcomes[1])


def test_an_input_image_goes_to_the_child_and_image_to_image_matches_the_thread(
        child_engine, tiny_engine):
    image = source_image()
    requests = [img2img_request(image, 0.5), img2img_request(image, 0.0)]

    in_child = child_engine.generate_batch(requests, [no_progress] * 2)
    in_thread = tiny_engine("sd").generate_batch(requests, [no_progress] * 2)

    assert np.abs(as_array(in_child[0]) - as_array(in_thread[0])).max() <= TOLERANCE
    assert np.abs(as_array(in_child[1]) - np.asarray(image).astype(np.int16)).max() <= TOLERANCE


def test_the_child_sends_native_pixels_and_scales_other_sizes_itself(child_engine, tiny_engine):
    image = source_image()
    native = img2img_request(image, 0.5)  # 256², the tiny model's native size
    scaled = replace(native, width=200, height=200)

    # the child's side (here in-process): pixels the server makes into an image, or one scaled
    outcomes = tiny_engine("sd").generate_pixels([native, scaled], [no_progress] * 2)
    in_child = child_engine.generate_batch([native, scaled], [no_progress] * 2)

    (pixels,), (made,) = (outcome.pixels for outcome in outcomes)
    assert isinstance(pixels, ImagePixels) and pixels.array.shape == (256, 256, 3)
    assert isinstance(made, Image.Image) and made.size == (200, 200)
    assert all(o.plan.request.input_images == [] and o.plan.image is None for o in outcomes)
    in_thread = tiny_engine("sd").generate_batch([native, scaled], [no_progress] * 2)
    assert [result.images[0].size for result in in_child] == [(256, 256), (200, 200)]
    for child_result, thread_result in zip(in_child, in_thread, strict=True):
        assert np.abs(as_array(child_result) - as_array(thread_result)).max() <= TOLERANCE


def test_unload_ends_the_process_and_the_next_call_starts_another(child_engine):
    first = child_pid(child_engine)
    devices_loaded = RESIDENCY.devices().get("cpu", (0, 0))[0]

    child_engine.unload()

    assert not child_engine.loaded
    assert RESIDENCY.devices().get("cpu", (0, 0))[0] == devices_loaded - 1
    assert not Path(f"/proc/{first}").exists() or _zombie(first)
    assert isinstance(child_engine.generate(request(1), no_progress), EngineResult)
    assert child_pid(child_engine) != first


def test_a_killed_process_fails_the_call_with_its_exit_code_and_the_next_call_loads_again(child_engine):
    pid = child_pid(child_engine)
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(GenerationFailed, match=rf"pid {pid}\) exited with code -9 during generate_pixels"):
        child_engine.generate(request(1), no_progress)

    assert not child_engine.loaded
    assert isinstance(child_engine.generate(request(1), no_progress), EngineResult)
    assert child_pid(child_engine) != pid


def test_a_process_that_dies_while_loading_makes_the_model_unavailable(tiny_model):
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", process=True)
    before = set(child_pids(os.getpid(), b"spawn_main"))
    loading = threading.Thread(target=lambda: outcome.append(raised(engine.load)))
    outcome: list[BaseException | None] = []
    loading.start()
    deadline = time.monotonic() + 30
    while not (new := set(child_pids(os.getpid(), b"spawn_main")) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new, "the model's process did not start"
    os.kill(new.pop(), signal.SIGKILL)  # while it imports torch and loads (seconds)
    loading.join(60)

    assert isinstance(outcome[0], ModelUnavailable)
    assert "could not be loaded" in str(outcome[0]) and "exited with code -9" in str(outcome[0])
    assert not engine.loaded


def test_auto_keeps_a_cpu_model_in_process_and_bad_values_are_refused(tiny_model):
    assert not DiffusersEngine(str(tiny_model("sd")), device="cpu").separate_process
    assert DiffusersEngine(str(tiny_model("sd")), device="cuda:1").separate_process
    with pytest.raises(ValueError, match="process must be true, false or \"auto\", not 'yes'"):
        DiffusersEngine(str(tiny_model("sd")), device="cpu", process="yes")


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
