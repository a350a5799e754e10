"""The CLI's Rich consoles: piped (a log file, ``| tee``), lines are not wrapped at 80 columns."""

from __future__ import annotations

from rich.console import Console


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps lines only on a terminal: a pipe or a file gets each line whole (tables
    are laid out the same either way)."""
    console = Console(stderr=stderr)
    console.soft_wrap = not console.is_terminal
    return console
