"""imagehub: a self-hosted image-generation hub behind the Oxen.ai inference API.

Importing this package is cheap: torch, diffusers and the web framework load lazily.
``imagehub.Client`` and ``imagehub.AsyncClient`` (see :mod:`imagehub.client`) load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from imagehub import client

        return getattr(client, name)
    raise AttributeError(f"module 'imagehub' has no attribute {name!r}")
