"""Backend name → engine class, imported lazily (torch only loads when a model needs it)."""

from __future__ import annotations

import importlib
from typing import Any

from imagehub.config import Settings
from imagehub.engines.base import Engine

BACKENDS: dict[str, str] = {
    "builtin": "imagehub.engines.builtin:BuiltinEngine",
    "diffusers": "imagehub.engines.diffusers:DiffusersEngine",
}


def create_engine(backend: str, options: dict[str, Any], settings: Settings) -> Engine:
    """Build (not load) the engine of ``backend`` with the card's options."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {sorted(BACKENDS)}")
    module_name, _, class_name = BACKENDS[backend].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(options)
    if backend == "diffusers":
        source = kwargs.pop("source")
        kwargs.setdefault("allow_downloads", settings.allow_hub_downloads)
        return cls(source, **kwargs)
    return cls(**kwargs)
