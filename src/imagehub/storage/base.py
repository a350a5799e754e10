"""The storage contract. Keys look like ``<generation_id>/<index>.png``."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    """Siblings: ``LocalStorage`` (here), ``S3Storage`` (scale-out issue)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def healthy(self) -> bool: ...
