"""imagehub-tiny, the built-in model: simple scenes of coloured shapes from plain English.

Importing this package is cheap; torch, transformers and the weights load on first use.
See ``docs/builtin-model.md`` for what it can and cannot draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import BuiltinEngine

__all__ = ["MODEL_ID", "BuiltinEngine"]

MODEL_ID = "imagehub-tiny"


def __getattr__(name: str) -> Any:
    if name == "BuiltinEngine":
        from .engine import BuiltinEngine

        return BuiltinEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
