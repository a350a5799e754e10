"""Remote providers behind the engine contract: Google Gemini, fal.ai's queue, an upstream Oxen
hub. ``RemoteEngine`` (in ``engine.py``) chains them with failover; ``http.py`` holds the retry
policy; each provider module documents its wire form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import RemoteEngine

__all__ = ["RemoteEngine"]


def __getattr__(name: str) -> Any:
    if name == "RemoteEngine":
        from .engine import RemoteEngine

        return RemoteEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
