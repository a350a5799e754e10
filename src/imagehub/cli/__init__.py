"""The ``imagehub`` command: serve, keys, and the sub-apps other modules add."""

from __future__ import annotations

import typer

from imagehub.cli.main import app


def main() -> None:
    """The command; a configuration that cannot work (ConfigError) is one ``error:`` line."""
    from imagehub.errors import ConfigError

    try:
        app()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc


__all__ = ["app", "main"]
