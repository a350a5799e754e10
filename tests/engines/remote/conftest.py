"""Fake providers on loopback (one per test), and remote engines built from the real cards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines.remote.fakes import KEY, FakeFal, FakeGemini, FakeOpenAI, FakeOxenHub, ImageHost

from imagehub.config import Settings, load_settings


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    server = FakeFal().start()
    yield server
    server.stop()


@pytest.fixture
def oxen() -> Iterator[FakeOxenHub]:
    server = FakeOxenHub().start()
    yield server
    server.stop()


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    server = ImageHost().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    """``settings(gemini=fake, fal=fake, **overrides)``: keys and base URLs for the given fakes
    only (the others unset), fast retries and polls."""

    def make(**kwargs: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path, "provider_backoff_seconds": 0.01, "provider_backoff_max_seconds": 2.0,
            "provider_poll_seconds": 0.05, "provider_timeout_seconds": 5.0, "provider_deadline_seconds": 30.0,
        }
        for name in ("gemini", "fal", "oxen", "openai"):
            server = kwargs.pop(name, None)
            values[f"{name}_api_key"] = KEY if server is not None else None
            if server is not None:
                values[f"{name}_base_url"] = server.url
        values.update(kwargs)
        return load_settings(**values)

    return make
