"""The ``imagehub`` command: serve, keys, and the sub-apps other modules add."""

from __future__ import annotations

from imagehub.cli.main import app


def main() -> None:
    app()


__all__ = ["app", "main"]
