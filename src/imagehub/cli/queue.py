"""``imagehub queue ls|watch|cancel``: the async queue from the terminal."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Column, Table

from imagehub.cli.console import make_console
from imagehub.cli.tables import print_rows, tsv_line
from imagehub.cli.target import (
    DOWNTIME_OPTION,
    KEY_OPTION,
    URL_OPTION,
    Target,
    error_text,
    fail,
    one_line_errors,
    open_target,
)
from imagehub.client import (
    ENDED,
    APIError,
    Event,
    GenerationCancelled,
    GenerationCompleted,
    GenerationProgress,
    GenerationStarted,
    StreamConnected,
)
from imagehub.errors import ImagehubError

queue_app = typer.Typer(help="List, watch and cancel queued generations.", no_args_is_help=True)
console = make_console()
STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")
HEADERS = ("id", "model", "status", "progress", "prompt", "enqueued")
_GIVES_WAY = {"model": 24, "prompt": 10_000}
"""The live table's columns cut short ("…") to fit the terminal, and the most each takes; on a
terminal too narrow for them at all, the prompt goes first, then the model. The others are
shown whole."""
ID_LENGTH = 36
"""A generation id is a UUID; a shorter one is taken as a prefix."""


@queue_app.command("ls")
def ls(status: str | None = typer.Option(None, help=f"One of {', '.join(STATUSES)} "
                                                       "(default: queued and processing)."),
       model: str | None = typer.Option(None, "-m", "--model"),
       url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Generations in the queue (or of one status); piped, one tab-separated line each."""
    with one_line_errors(), open_target(url, api_key) as target:
        rows = target.list(status=status, model=model)
    print_rows(console, HEADERS, [_cells(row) for row in rows])


@queue_app.command("cancel")
def cancel(generation_ids: list[str] = typer.Argument(..., metavar="ID...",
                                                      help="Ids, or unique prefixes of queued or "
                                                           "processing ones."),
           url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Cancel queued or processing generations: every one given, each failure reported."""
    failures = 0
    with one_line_errors(), open_target(url, api_key) as target:
        active = functools.cache(target.list)
        for given in generation_ids:
            try:
                generation_id = _resolve(given, active)
                target.cancel(generation_id)
            except (APIError, ImagehubError, LookupError) as exc:
                failures += 1
                message = str(exc) if isinstance(exc, LookupError) else error_text(exc)
                typer.echo(f"error: {message}", err=True)
            else:
                typer.echo(f"cancelled {generation_id}")
    if failures:
        raise typer.Exit(1)


def _resolve(given: str, active: Callable[[], list[dict[str, Any]]]) -> str:
    """``given`` when it is a whole id; else the one active generation whose id starts with it
    (a trailing ``...`` or ``…``, as a cut table shows it, is dropped)."""
    prefix = given.removesuffix("…").removesuffix("...")
    if len(prefix) >= ID_LENGTH:
        return prefix
    if not prefix:
        raise LookupError(f"{given!r}: not a generation id")
    matches = [row["generation_id"] for row in active() if row["generation_id"].startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"{given!r}: no queued or processing generation's id starts with it")
    raise LookupError(f"{given!r}: the ids of {len(matches)} queued or processing generations "
                      "start with it; give more of the id")


@queue_app.command("watch")
def watch(generation_ids: list[str] = typer.Argument(None, metavar="[ID...]",
                                                     help="Watch these until they end "
                                                          "(default: every active one, until Ctrl-C)."),
          max_downtime: float = DOWNTIME_OPTION,
          url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """A live table of generations, moved by the server's events; piped, a tab-separated line
    each time a generation changes."""
    if not url:
        typer.echo("error: queue watch follows a server's events: set IMAGEHUB_URL (or --url)",
                   err=True)
        raise typer.Exit(1)
    with one_line_errors(), open_target(url, api_key) as target:
        active = functools.cache(target.list)
        try:
            wanted = [_resolve(given, active) for given in generation_ids or []]
        except LookupError as exc:
            fail(str(exc))
        _Watch(target, wanted).run(max_downtime)


class _Watch:
    """The rows ``queue watch`` shows: moved by events, read again each time the stream opens."""

    def __init__(self, target: Target, wanted: list[str]) -> None:
        self.target, self.wanted = target, wanted
        self.rows: dict[str, dict[str, Any]] = {}
        self.errors_shown: set[str] = set()
        self.printed: dict[str, list[str]] = {}  # piped: each row's cells as last written
        self.reload()

    @property
    def done(self) -> bool:
        return bool(self.wanted) and all(self.rows[i]["status"] in ENDED for i in self.wanted)

    def run(self, max_downtime: float) -> None:
        if not console.is_terminal:  # piped: a tab-separated line each time a row changes
            self._follow(max_downtime, self._print_changes)
            return
        if self.done:  # all ended already: the table once, no live display
            console.print(self.table())
            self._print_errors(console)
            return
        with Live(self.table(), console=console, auto_refresh=False) as live:
            def show() -> None:
                live.update(self.table(), refresh=True)
                self._print_errors(live.console)

            self._follow(max_downtime, show)

    def _follow(self, max_downtime: float, show: Callable[[], None]) -> None:
        """``show()`` the rows now, and again after each event that changes one, until done."""
        show()
        if self.done:
            return
        events = self.target.events(max_downtime=max_downtime)
        try:
            for event in events:
                if self.apply(event):
                    show()
                if self.done:
                    break
        finally:
            events.close()  # type: ignore[attr-defined]

    def _print_changes(self) -> None:
        for gid, row in self.rows.items():
            cells = _cells(row)
            if self.printed.get(gid) != cells:
                self.printed[gid] = cells
                console.file.write(tsv_line(cells))
                console.file.flush()

    def _print_errors(self, out: Console) -> None:
        """A failure's message once, above the table (in it, a row stays one line)."""
        for gid, row in self.rows.items():
            if row.get("error_message") and gid not in self.errors_shown:
                self.errors_shown.add(gid)
                out.print(f"{gid}: {row['status']}: {row['error_message']}", markup=False,
                          highlight=False)

    def reload(self) -> None:
        """The rows as the server has them now (their events may be gone: a restart, an outage)."""
        if not self.wanted:
            self.rows.update((row["generation_id"], row) for row in self.target.list())
        still_open = [gid for gid, row in self.rows.items() if row["status"] not in ENDED]
        for gid in self.wanted or still_open:
            self.rows[gid] = self.target.get(gid)

    def apply(self, event: Event) -> bool:
        """Whether ``event`` changed a row."""
        if isinstance(event, StreamConnected):
            try:
                self.reload()
            except httpx.TransportError:
                return False  # gone again right after the stream opened: the next reconnect reloads
            return True
        gid = event.generation_id
        if gid is None or (self.wanted and gid not in self.rows):
            return False
        if gid not in self.rows:
            self.rows[gid] = self._first_row(gid, event)
        _apply(self.rows[gid], event)
        return True

    def _first_row(self, gid: str, event: Event) -> dict[str, Any]:
        try:
            return self.target.get(gid)
        except APIError:  # a generation this key cannot read: what the event says
            return {"generation_id": gid, "model_name": event.model, "status": "queued"}

    def table(self) -> Table:
        """One line a row, whatever the width: the id whole, the others cut short ("…")."""
        rows = [_cells(row, errors=False) for row in self.rows.values()]
        widths = _fitted_widths(rows, console.width)
        table = Table(*(Column(header, width=width, no_wrap=True, overflow="ellipsis")
                        for header, width in zip(HEADERS, widths) if width))
        for row in rows:
            table.add_row(*(cell for cell, width in zip(row, widths) if width))
        return table


def _apply(row: dict[str, Any], event: Any) -> None:
    if isinstance(event, GenerationStarted):
        row["status"] = "processing"
    elif isinstance(event, GenerationProgress):
        row.update(status="processing", progress=event.step / max(event.total_steps, 1))
    elif isinstance(event, GenerationCompleted):
        row["status"] = event.status
        row["error_message"] = event.error
    elif isinstance(event, GenerationCancelled):
        row["status"] = "cancelled"


def _cells(row: dict[str, Any], errors: bool = True) -> list[str]:
    """A row's cells; ``errors=False`` leaves a failure's message out of its status (the live
    table prints it once, above)."""
    progress = row.get("progress")
    status = row["status"]
    if errors and row.get("error_message"):
        status += f": {row['error_message']}"
    enqueued = row.get("enqueued_at")
    return [row["generation_id"], row.get("model_name") or "", status,
            "" if progress is None else f"{progress:.0%}", row.get("prompt") or "",
            time.strftime("%H:%M:%S", time.localtime(enqueued)) if enqueued else ""]


def _fitted_widths(rows: list[list[str]], width: int) -> list[int]:
    """Each column's width in a table of ``width`` characters (0: left out)."""
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(HEADERS)]
    flexible = [i for i, header in enumerate(HEADERS) if header in _GIVES_WAY]
    for i in flexible:
        widths[i] = min(widths[i], _GIVES_WAY[HEADERS[i]])
    for i in reversed(flexible):  # the prompt first
        spare = width - (1 + sum(w + 3 for w in widths if w))
        if spare >= 0:
            break
        widths[i] = max(widths[i] + spare, 0) if widths[i] + spare >= 6 else 0
    return widths
