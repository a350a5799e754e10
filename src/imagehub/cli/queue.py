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
from rich.table import Table

from imagehub.cli.tables import id_table, print_rows
from imagehub.cli.target import (
    DOWNTIME_OPTION,
    KEY_OPTION,
    URL_OPTION,
    Target,
    error_text,
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
console = Console()
STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")
HEADERS = ("id", "model", "status", "progress", "prompt", "enqueued")
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
    """A live table of generations, moved by the server's events."""
    if not url:
        typer.echo("error: queue watch follows a server's events: set IMAGEHUB_URL (or --url)",
                   err=True)
        raise typer.Exit(1)
    with one_line_errors(), open_target(url, api_key) as target:
        _Watch(target, list(generation_ids or [])).run(max_downtime)


class _Watch:
    """The rows ``queue watch`` shows: moved by events, read again each time the stream opens."""

    def __init__(self, target: Target, wanted: list[str]) -> None:
        self.target, self.wanted = target, wanted
        self.rows: dict[str, dict[str, Any]] = {}
        self.reload()

    @property
    def done(self) -> bool:
        return bool(self.wanted) and all(self.rows[i]["status"] in ENDED for i in self.wanted)

    def run(self, max_downtime: float) -> None:
        if self.done:
            console.print(self.table())
            return
        events = self.target.events(max_downtime=max_downtime)
        try:
            with Live(self.table(), console=console, auto_refresh=False) as live:
                for event in events:
                    if self.apply(event):
                        live.update(self.table(), refresh=True)
                    if self.done:
                        break
        finally:
            events.close()  # type: ignore[attr-defined]

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
        return id_table(HEADERS, [_cells(row) for row in self.rows.values()])


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


def _cells(row: dict[str, Any]) -> list[str]:
    progress = row.get("progress")
    status = row["status"] + (f": {row['error_message']}" if row.get("error_message") else "")
    enqueued = row.get("enqueued_at")
    return [row["generation_id"], row.get("model_name") or "", status,
            "" if progress is None else f"{progress:.0%}", row.get("prompt") or "",
            time.strftime("%H:%M:%S", time.localtime(enqueued)) if enqueued else ""]
