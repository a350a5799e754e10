"""Local diffusers pipelines (Stable Diffusion, SDXL, SD3, Flux) as an imagehub engine.

Importing this package is cheap: torch and diffusers load only when an attribute needs them (the
diffusers lazy-module habit), so the catalog can name the engine without the heavy dependencies.
Install them with ``pip install 'imagehub[diffusers]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagehub.engines.diffusers.engine import DiffusersEngine

__all__ = ["DiffusersEngine"]

_LAZY = {"DiffusersEngine": "imagehub.engines.diffusers.engine"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
