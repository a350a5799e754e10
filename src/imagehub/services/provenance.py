"""What reproduces a generation: model, weights fingerprint, engine info, software versions."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from typing import Any

from imagehub import __version__
from imagehub.catalog.catalog import ModelEntry
from imagehub.engines.base import EngineResult


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"imagehub": __version__, "diffusers": version("diffusers"), "torch": version("torch")}


def collect(entry: ModelEntry, result: EngineResult) -> dict[str, Any]:
    engine = entry.engine
    return {
        "model": entry.id,
        "backend": entry.card.backend,
        "weights_fingerprint": engine.fingerprint() if engine is not None else None,
        "engine": result.info,
        "versions": versions(),
    }
