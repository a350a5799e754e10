"""Shared fixtures: a tiny diffusers model built in code, and the real server started as a
subprocess on loopback (``imagehub.testing.ServerProcess``)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from imagehub.testing import TINY_MODEL, ServerProcess, free_port, write_catalog

__all__ = ["TINY_MODEL", "ServerProcess", "free_port", "write_catalog"]

# The session's servers and CLI runs share one cache (what pipeline classes take), not the user's
os.environ["IMAGEHUB_CACHE_DIR"] = tempfile.mkdtemp(prefix="imagehub-tests-cache-")
atexit.register(shutil.rmtree, os.environ["IMAGEHUB_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight StableDiffusion pipeline saved as a diffusers folder (no download)."""
    from imagehub.engines.diffusers.dummy import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_sd_dir: Path) -> Iterator[ServerProcess]:
    """One real server per test module, serving the tiny model (2 steps) and a slow one (40)."""
    data_dir = tmp_path_factory.mktemp("hub")
    write_catalog(data_dir, tiny_sd_dir, **{"tiny-sd-slow": 40})
    proc = ServerProcess(data_dir, {"IMAGEHUB_KEEPALIVE_SECONDS": "1"}).start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
