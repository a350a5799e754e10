"""``imagehub queue ls|watch|cancel``: the async queue from the terminal."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from imagehub.cli.target import KEY_OPTION, URL_OPTION, one_line_errors, open_target
from imagehub.client import (
    ENDED,
    GenerationCancelled,
    GenerationCompleted,
    GenerationProgress,
    GenerationStarted,
)

queue_app = typer.Typer(help="List, watch and cancel queued generations.", no_args_is_help=True)
console = Console()
STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")


@queue_app.command("ls")
def ls(status: str | None = typer.Option(None, help=f"One of {', '.join(STATUSES)} "
                                                       "(default: queued and processing)."),
       model: str | None = typer.Option(None, "-m", "--model"),
       url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Generations in the queue (or of one status)."""
    with one_line_errors(), open_target(url, api_key) as target:
        rows = target.list(status=status, model=model)
    console.print(_table(rows))


@queue_app.command("cancel")
def cancel(generation_ids: list[str] = typer.Argument(..., metavar="ID..."),
           url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Cancel queued or processing generations."""
    with one_line_errors(), open_target(url, api_key) as target:
        for generation_id in generation_ids:
            target.cancel(generation_id)
            typer.echo(f"cancelled {generation_id}")


@queue_app.command("watch")
def watch(generation_ids: list[str] = typer.Argument(None, metavar="[ID...]",
                                                     help="Watch these until they end "
                                                          "(default: every active one, until Ctrl-C)."),
          url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """A live table of generations, moved by the server's events."""
    if not url:
        typer.echo("error: queue watch follows a server's events: set IMAGEHUB_URL (or --url)",
                   err=True)
        raise typer.Exit(1)
    with one_line_errors(), open_target(url, api_key) as target:
        events = target.events()
        wanted = list(generation_ids or [])
        rows = {r["generation_id"]: r for r in ([target.get(i) for i in wanted] or target.list())}
        with Live(_table(list(rows.values())), console=console, auto_refresh=False) as live:
            while not (wanted and all(rows[i]["status"] in ENDED for i in wanted)):
                event = next(events)
                gid = event.generation_id
                if gid is None or (wanted and gid not in rows):
                    continue
                row = rows.setdefault(gid, {"generation_id": gid, "model_name": event.model,
                                            "prompt": "", "status": "queued"})
                _apply(row, event)
                live.update(_table(list(rows.values())), refresh=True)
        events.close()  # type: ignore[attr-defined]


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


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "model", "status", "progress", "prompt", "enqueued")
    for row in rows:
        progress = row.get("progress")
        status = row["status"] + (f": {row['error_message']}" if row.get("error_message") else "")
        enqueued = row.get("enqueued_at")
        table.add_row(row["generation_id"], row.get("model_name") or "", status,
                      "" if progress is None else f"{progress:.0%}", row.get("prompt") or "",
                      time.strftime("%H:%M:%S", time.localtime(enqueued)) if enqueued else "")
    return table
