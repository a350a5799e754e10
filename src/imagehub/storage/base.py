"""The storage contract. Keys look like ``<generation_id>/<index>.png``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Storage(Protocol):
    """Siblings: ``LocalStorage`` (here), ``S3Storage`` (scale-out issue)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def listed(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Each key directly under the folder ``prefix`` (``inputs/``), with when it was last
        written (Unix seconds)."""
        ...
    def problem(self) -> str | None:
        """Why images cannot be stored now (not writable, full), or None."""
        ...
    def free_bytes(self) -> int | None:
        """Room left for images (bytes), where the storage has a limit it can tell."""
        ...
