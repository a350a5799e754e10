"""Images as files under ``<data_dir>/files``."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from imagehub.errors import storage_error

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 64 * 2**20
"""Under this much free disk, the server is not ready (``/readyz``): a batch of 1024² PNGs is tens
of MiB, and SQLite needs room to write."""


class LocalStorage:
    """Local-disk storage; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = root.resolve()  # once: resolving walks every component (2.5% of the
        # server's GIL time under load on an H100 host, resolved twice per image)

    def _path(self, key: str) -> Path:
        path = (self._real_root / key).resolve()
        if self._real_root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """StorageUnavailable (InsufficientStorage when the disk is full) if it cannot be
        written; no part of it is left."""
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # one per writer: two
        try:                                                           # may put one key at once
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                log.error("could not write %s: %s", path, exc)
                raise storage_error(exc, key) from exc
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def listed(self, prefix: str) -> Iterator[tuple[str, float]]:
        try:
            entries = list(os.scandir(self._path(prefix.rstrip("/"))))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    yield f"{prefix.rstrip('/')}/{entry.name}", entry.stat().st_mtime
            except FileNotFoundError:  # deleted meanwhile
                continue

    def problem(self) -> str | None:
        if not os.access(self.root, os.W_OK):
            return "not writable"
        free = self.free_bytes()
        if free is None:
            return "not reachable"
        if free < MIN_FREE_BYTES:
            return f"full: {free // 2**20} MiB free (under {MIN_FREE_BYTES // 2**20} MiB)"
        return None

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:  # the folder is gone (a disk unmounted): /readyz says so
            return None
