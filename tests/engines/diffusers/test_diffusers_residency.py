"""Several diffusers models loaded at once within a memory budget: LRU eviction, pinning, loads
that never block a resident model, and no memory kept across many switches."""

from __future__ import annotations

import gc
import shutil
import threading
import time
import weakref
from pathlib import Path

import psutil
import pytest
import torch

from imagehub.engines.base import EngineRequest, no_progress
from imagehub.engines.diffusers import DiffusersEngine, dummy, loading
from imagehub.engines.diffusers import engine as engine_module
from imagehub.engines.diffusers.residency import Residency
from imagehub.errors import ModelUnavailable


@pytest.fixture
def residency(monkeypatch: pytest.MonkeyPatch) -> Residency:
    """A fresh residency in place of the process's one."""
    fresh = Residency()
    monkeypatch.setattr(engine_module, "RESIDENCY", fresh)
    return fresh


@pytest.fixture(scope="module")
def three_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("resident")
    return [dummy.build_tiny_sd(root / f"sd-{seed}", seed=seed) for seed in range(3)]


def size(folder: Path) -> int:
    return loading.weights_bytes(folder, torch.float32)


def render(engine: DiffusersEngine) -> None:
    request = EngineRequest(prompt="a cat", width=256, height=256, seed=1, num_inference_steps=1)
    engine.generate(request, no_progress)


def engines(folders: list[Path]) -> list[DiffusersEngine]:
    return [DiffusersEngine(str(folder), device="cpu") for folder in folders]


def test_the_least_recently_used_model_is_unloaded_to_fit_the_budget(residency, three_models):
    residency.budget_bytes = int(2.5 * size(three_models[0]))  # room for two
    a, b, c = engines(three_models)

    for engine in (a, b, a, c):  # b is now the least recently used
        render(engine)

    assert (a.loaded, b.loaded, c.loaded) == (True, False, True)
    assert residency.resident() == [str(three_models[0]), str(three_models[2])]
    assert residency.used_bytes("cpu") <= residency.budget_bytes
    render(b)  # comes back, a goes
    assert (a.loaded, b.loaded, c.loaded) == (False, True, True)


def test_models_in_their_own_processes_are_evicted_by_ending_the_process(residency, three_models):
    residency.budget_bytes = int(1.5 * size(three_models[0]))  # room for one
    a, b = (DiffusersEngine(str(folder), device="cpu", process=True) for folder in three_models[:2])
    try:
        render(a)
        a_process = a._copies[0].process
        assert a_process is not None and a_process.alive

        render(b)  # a is unloaded to make room: its process ends

        assert (a.loaded, b.loaded) == (False, True)
        assert not a_process.alive
        assert residency.resident() == [str(three_models[1])]
        assert residency.used_bytes("cpu") <= residency.budget_bytes
    finally:
        a.close()
        b.close()


def test_a_pinned_model_is_never_unloaded(residency, three_models):
    residency.budget_bytes = int(1.5 * size(three_models[0]))  # room for one
    a, b, _ = engines(three_models)
    a.pinned = True
    render(a)
    started = time.monotonic()

    with pytest.raises(ModelUnavailable, match="the pinned models on cpu take .* model memory "
                                               "budget; raise IMAGEHUB_MODEL_MEMORY_BUDGET_GB"):
        render(b)  # at once: waiting for a pinned model to leave would wait the whole 300 s
    assert time.monotonic() - started < 30
    assert a.loaded and not b.loaded


def test_a_model_bigger_than_the_budget_is_refused_by_name(residency, three_models):
    residency.budget_bytes = size(three_models[0]) // 2
    with pytest.raises(ModelUnavailable, match="more than the whole model memory budget"):
        render(engines(three_models)[0])


def test_a_running_model_is_not_unloaded_under_it(residency, three_models):
    residency.budget_bytes = int(1.5 * size(three_models[0]))
    a, b, _ = engines(three_models)
    render(a)
    residency.acquire(a)  # a is mid-run
    residency.wait_seconds = 0.1
    with pytest.raises(ModelUnavailable, match="busy or pinned"):
        b.load()
    residency.release(a)

    b.load()

    assert b.loaded and not a.loaded


def test_loading_one_model_never_blocks_another_resident_one(residency, three_models, monkeypatch):
    a, b, _ = engines(three_models)
    render(a)
    loading_started, finish_loading = threading.Event(), threading.Event()
    real_load = loading.load_pipeline

    def slow_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        loading_started.set()
        assert finish_loading.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loading, "load_pipeline", slow_load)
    loader = threading.Thread(target=b.load)
    loader.start()
    assert loading_started.wait(60)

    render(a)  # while b is still loading

    assert loader.is_alive() and not b.loaded
    finish_loading.set()
    loader.join()
    assert b.loaded


def test_fifty_switches_leak_no_memory(residency, three_models):
    residency.budget_bytes = int(1.5 * size(three_models[0]))  # one at a time: every use reloads
    a, b, _ = engines(three_models)
    process = psutil.Process()
    pipes: list[weakref.ref] = []
    for engine in (a, b) * 3:  # warm the allocator, caches and lazy imports
        render(engine)
    gc.collect()
    before = process.memory_info().rss

    for engine in (a, b) * 25:
        render(engine)
        pipes.append(weakref.ref(engine.pipeline))
    gc.collect()
    growth = process.memory_info().rss - before

    assert residency.evictions >= 55
    assert sum(ref() is not None for ref in pipes) == 1  # only the resident one is alive
    print(f"RSS growth over 50 switches: {growth / 2**20:.1f} MiB "
          f"(model {size(three_models[0]) / 2**20:.1f} MiB)")
    assert growth < 10 * size(three_models[0])  # a kept pipeline per switch would be 50x


def test_a_damaged_model_fails_at_once_after_its_first_try_until_its_files_change(
        residency, three_models, tmp_path):
    """Its first load made room (evicting a model), then found the weights cut short; asking again
    must not evict the model loaded since, and mended files load."""
    residency.budget_bytes = int(1.5 * size(three_models[0]))  # room for one
    damaged = tmp_path / "damaged"
    shutil.copytree(three_models[1], damaged)
    weights = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:len(whole) // 2])
    a, b = DiffusersEngine(str(three_models[0]), device="cpu"), DiffusersEngine(str(damaged), device="cpu")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        render(b)
    render(a)
    evictions = residency.evictions
    with pytest.raises(ModelUnavailable, match="could not be loaded") as again:
        render(b)
    assert type(again.value).__name__ == "ModelFilesUnreadable"
    assert a.loaded and residency.evictions == evictions  # nothing evicted for it this time
    weights.write_bytes(whole)
    render(b)
    assert b.loaded and not a.loaded


def test_a_budget_that_fits_one_copy_but_not_two_says_so(residency, three_models):
    residency.budget_bytes = int(1.5 * size(three_models[0]))  # room for one copy
    engine = DiffusersEngine(str(three_models[0]), device="cpu", replicas=2)

    with pytest.raises(ModelUnavailable, match=r"needs about [0-9.]+ GiB \(2 copies\), more than "
                                               r"the whole model memory budget"):
        engine.load()
    assert not engine.loaded
