"""Tiny random-weight pipelines built in code, once per session, and engines loaded over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagehub.engines.diffusers import DiffusersEngine, dummy


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model("sd" | "sdxl" | "sd3" | "flux", **builder_kwargs)`` -> a saved diffusers folder.

    Each distinct (family, kwargs) is built once per session; the folders are removed with the
    session's temporary directory.
    """
    built: dict[tuple[str, tuple[tuple[str, Any], ...]], Path] = {}

    def make(family: str, **kwargs: Any) -> Path:
        key = (family, tuple(sorted(kwargs.items())))
        if key not in built:
            folder = tmp_path_factory.mktemp(f"tiny-{family}") / "model"
            built[key] = dummy.TINY_BUILDERS[family](folder, **kwargs)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_engine(tiny_model: Callable[..., Path]) -> Callable[..., DiffusersEngine]:
    """``tiny_engine("sd", **builder_kwargs)`` -> a loaded DiffusersEngine on the CPU (shared)."""
    engines: dict[Path, DiffusersEngine] = {}

    def make(family: str, **kwargs: Any) -> DiffusersEngine:
        folder = tiny_model(family, **kwargs)
        if folder not in engines:
            engine = DiffusersEngine(str(folder), device="cpu")
            engine.load()
            engines[folder] = engine
        return engines[folder]

    return make


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run these tests on one torch thread, restored afterwards.

    Tiny models gain nothing from threads, and on a busy 2-core machine torch's spinning worker
    threads made a 256² render about eight times slower (1.5 s instead of 0.18 s).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
