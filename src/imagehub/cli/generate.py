"""``imagehub generate``: queue generations, show their steps as progress bars, save the images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from imagehub.cli.target import KEY_OPTION, URL_OPTION, Target, one_line_errors, open_target
from imagehub.client import (
    GenerationCancelled,
    GenerationCompleted,
    GenerationProgress,
    GenerationStarted,
)

err_console = Console(stderr=True)


def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str | None = typer.Option(None, "-m", "--model",
                                        help="Model id (default: IMAGEHUB_DEFAULT_MODEL)."),
    aspect_ratio: str | None = typer.Option(None, "--aspect-ratio", help="e.g. 1:1, 16:9."),
    resolution: str | None = typer.Option(None, "--resolution", help="512, 1K, 2K or 4K."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same image; counts up per -n."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt"),
    steps: int | None = typer.Option(None, "--steps", help="num_inference_steps."),
    param: list[str] = typer.Option([], "-p", "--param",
                                    help="Any other model field, as name=value (value as JSON "
                                         "when it parses, else text). Repeatable."),
    n: int = typer.Option(1, "-n", min=1, max=4, help="How many generations (1-4)."),
    out: Path = typer.Option(Path("."), "-o", "--out", help="Folder for the PNGs."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Generate images, with a progress bar per generation fed by the server's step events."""
    params: dict[str, Any] = {"aspect_ratio": aspect_ratio, "resolution": resolution, "seed": seed,
                              "negative_prompt": negative_prompt, "num_inference_steps": steps}
    params.update(_parse_params(param))
    if model is None:
        from imagehub.config import load_settings

        model = load_settings().default_model
    with one_line_errors(), open_target(url, api_key, run_workers=True) as target:
        failed = _run(target, model, prompt, n, params, out)
    if failed:
        raise typer.Exit(1)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            typer.echo(f"error: --param {pair!r}: expected name=value", err=True)
            raise typer.Exit(2)
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def _run(target: Target, model: str, prompt: str, n: int, params: dict[str, Any], out: Path) -> int:
    """Enqueue, follow the events until every generation ended; the number that did not succeed."""
    # 1. listen first (new streams also get the last seconds of events), then enqueue
    events = target.events()
    ids = target.enqueue(model, prompt, num_generations=n, **params)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    # 2. one bar per generation, moved by step events
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[state]}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress:
        tasks = {gid: progress.add_task(gid[:8], total=None, state="queued") for gid in ids}
        pending = set(ids)
        for event in events:
            if event.generation_id not in pending:
                continue
            task = tasks[event.generation_id]
            if isinstance(event, GenerationStarted):
                progress.update(task, state="running")
            elif isinstance(event, GenerationProgress):
                progress.update(task, completed=event.step, total=event.total_steps, state="running")
            elif isinstance(event, (GenerationCompleted, GenerationCancelled)):
                pending.discard(event.generation_id)
                ok = isinstance(event, GenerationCompleted) and event.succeeded
                failed += 0 if ok else 1
                state = "done" if ok else event.status or "ended"
                progress.update(task, state=state)
                # 3. save what succeeded, say why the rest did not
                if ok:
                    for path in _save(target, event.generation_id, out):
                        progress.console.print(f"saved {path}")
                else:
                    reason = getattr(event, "error", None) or event.status
                    progress.console.print(f"[red]{event.generation_id}: {reason}[/red]")
            if not pending:
                break
    events.close()  # type: ignore[attr-defined]
    return failed


def _save(target: Target, generation_id: str, out: Path) -> list[Path]:
    row = target.get(generation_id)
    images = target.image_bytes(row)
    paths = []
    for index, data in enumerate(images):
        suffix = f"-{index}" if len(images) > 1 else ""
        path = out / f"{generation_id}{suffix}.png"
        path.write_bytes(data)
        paths.append(path)
    return paths
