"""``imagehub generate``: queue generations, show their steps as progress bars, save the images."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from imagehub.cli.console import make_console
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
    StreamError,
    image_ref,
)
from imagehub.errors import ImagehubError

err_console = make_console(stderr=True)
COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
           TextColumn("{task.fields[state]}"), TimeElapsedColumn())
NOT_PARAMS = {"prompt": "the PROMPT argument", "model": "-m/--model", "num_generations": "-n",
              "idempotency_key": "--idempotency-key"}
"""Request fields that ``-p`` may not set, and the option that does."""
OPTION_FIELDS = {"aspect_ratio": "--aspect-ratio", "resolution": "--resolution", "seed": "--seed",
                 "negative_prompt": "--negative-prompt", "num_inference_steps": "--steps",
                 "input_image": "-i/--image"}
_REMOTE_REFS = ("https://", "http://", "data:")
_LOST = (StreamError, APIError, ImagehubError, httpx.HTTPError)
"""What ends following the generations (the stream gone, the key refused, the server away): the
ones not saved are named, to be fetched later."""


def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str | None = typer.Option(None, "-m", "--model",
                                        help="Model id (default: IMAGEHUB_DEFAULT_MODEL)."),
    aspect_ratio: str | None = typer.Option(None, "--aspect-ratio", help="e.g. 1:1, 16:9."),
    resolution: str | None = typer.Option(None, "--resolution", help="512, 1K, 2K or 4K."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same image; counts up per -n."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt"),
    steps: int | None = typer.Option(None, "--steps", help="num_inference_steps."),
    image: list[str] = typer.Option([], "-i", "--image",
                                    help="An image to edit or start from: a file, or an https:// "
                                         "URL the server fetches (input_image). Repeatable, for "
                                         "models that take several."),
    param: list[str] = typer.Option([], "-p", "--param",
                                    help="Any other model field, as name=value (value as JSON "
                                         "when it parses, else text). Repeatable."),
    n: int = typer.Option(1, "-n", min=1, max=4, help="How many generations (1-4)."),
    out: Path = typer.Option(Path("."), "-o", "--out", help="Folder for the PNGs."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Run again with the same key and the same request: the "
                                        "same generations, not new ones."),
    max_downtime: float = DOWNTIME_OPTION,
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Generate images, with a progress bar per generation fed by the server's step events."""
    options: dict[str, Any] = {"aspect_ratio": aspect_ratio, "resolution": resolution, "seed": seed,
                               "negative_prompt": negative_prompt, "num_inference_steps": steps,
                               "input_image": _image_refs(image)}
    params = _merge_params(options, _parse_params(param))
    if model is None:
        from imagehub.config import load_settings

        model = load_settings().default_model
    _prepare_out(out)
    with one_line_errors(), open_target(url, api_key, run_workers=True) as target:
        ids: list[str] = []
        ended: set[str] = set()  # filled as they end, so Ctrl-C at any point knows what is left
        unsaved: list[str] = []  # ended (succeeded), but their images not saved here
        try:
            ids = target.enqueue(model, prompt, num_generations=n,
                                 idempotency_key=idempotency_key, **params)
            failed = _follow(target, ids, ended, unsaved, out, max_downtime)
        except KeyboardInterrupt as exc:  # during the enqueue, its ids come with it
            ids = ids or list(getattr(exc, "made", None) or [])
            _interrupted(target, [i for i in ids if i not in ended], unsaved)
    if failed:
        raise typer.Exit(1)


def _image_refs(values: list[str]) -> str | list[str] | None:
    """``--image`` values as ``input_image``: a URL as given, a file as a data URI (refused here,
    before anything is queued, when it cannot be read or is not an image); one, a list, or None."""
    refs = [value if value.startswith(_REMOTE_REFS) else _data_uri(value) for value in values]
    return (refs[0] if len(refs) == 1 else refs) if refs else None


def _data_uri(value: str) -> str:
    try:
        return image_ref(Path(value).expanduser(), field="-i/--image")
    except OSError as exc:
        fail(f"-i/--image {value}: cannot read it: {exc.strerror or exc}", code=2)
    except ValueError as exc:
        fail(str(exc), code=2)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            fail(f"--param {pair!r}: expected name=value", code=2)
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def _merge_params(options: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The options' fields and ``-p``'s; ``-p`` may not set what an option or argument sets."""
    for name in params:
        if name in NOT_PARAMS:
            fail(f"-p {name}: give it with {NOT_PARAMS[name]}, not -p", code=2)
        if options.get(name) is not None:
            fail(f"-p {name}: also given as {OPTION_FIELDS[name]}; give it once", code=2)
    return {**options, **params}


def _prepare_out(out: Path) -> None:
    """The output folder, made before anything is queued, so a bad ``-o`` queues nothing."""
    if out.exists() and not out.is_dir():
        fail(f"-o/--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"-o/--out {out}: cannot create the folder: {exc.strerror or exc}", exc)
    if not os.access(out, os.W_OK | os.X_OK):
        fail(f"-o/--out {out}: the folder is not writable")


def _follow(target: Target, ids: list[str], ended: set[str], unsaved: list[str], out: Path,
            max_downtime: float) -> int:
    """Follow the events until every generation ended (each added to ``ended``); the number that
    did not succeed."""
    # the stream opens at the first read; its StreamConnected (and each reconnect's) re-reads the
    # rows, so generations that ended before (an idempotent re-run, a restart) count as ended
    events = target.events(max_downtime=max_downtime)
    with Progress(*COLUMNS, console=err_console) as progress:
        bars = _Bars(target, progress, ids, ended, unsaved, out)
        try:
            for event in events:
                bars.apply(event)
                if not bars.pending:
                    break
        except _LOST as exc:
            fail(f"{error_text(exc)}; not saved, still on the server: {bars.not_saved()}", exc)
        finally:
            events.close()  # type: ignore[attr-defined]
    if bars.unsaved:
        fail(f"not saved, still on the server: {bars.not_saved()}")
    return bars.failed


def _interrupted(target: Target, waiting: list[str], unsaved: list[str]) -> NoReturn:
    """Ctrl-C: a server goes on with the generations, to be fetched later; in this process
    nothing would run them until the next command here, which would run them before its own, so
    they are cancelled. Those that succeeded but could not be saved are named too. Exit status
    130, as for any command stopped by Ctrl-C."""
    if not waiting and not unsaved:
        fail("interrupted", code=130)
    if not target.runs_jobs_here:
        fail(f"interrupted; not saved, still on the server: {' '.join(unsaved + waiting)}",
             code=130)
    cancelled = []
    for generation_id in waiting:
        try:
            target.cancel(generation_id)
            cancelled.append(generation_id)
        except ImagehubError:
            pass  # it ended meanwhile
    kept = f"; succeeded, not saved: {' '.join(unsaved)}" if unsaved else ""
    fail(f"interrupted; cancelled {' '.join(cancelled) or 'nothing (all had ended)'}{kept}",
         code=130)


class _Bars:
    """One progress bar per generation; saves the images of those that succeed."""

    def __init__(self, target: Target, progress: Progress, ids: list[str], ended: set[str],
                 unsaved: list[str], out: Path) -> None:
        self.target, self.progress, self.out, self.ended = target, progress, out, ended
        self.tasks = {gid: progress.add_task(gid[:8], total=None, state="queued") for gid in ids}
        self.failed = 0
        self.unsaved = unsaved  # succeeded, but their images could not be saved here

    @property
    def pending(self) -> list[str]:
        """The generations not ended yet, in the order they were queued."""
        return [gid for gid in self.tasks if gid not in self.ended]

    def not_saved(self) -> str:
        """The ids whose images this command did not save: those that succeeded but could not be
        saved, and those not ended yet."""
        return " ".join(gid for gid in self.tasks if gid in self.unsaved or gid not in self.ended)

    def apply(self, event: Event) -> None:
        if isinstance(event, StreamConnected):
            self.sync()
            return
        gid = event.generation_id
        if gid not in self.pending:
            return
        if isinstance(event, GenerationStarted):
            self.progress.update(self.tasks[gid], state="running")
        elif isinstance(event, GenerationProgress):
            self.progress.update(self.tasks[gid], completed=event.step, total=event.total_steps,
                                 state="running")
        elif isinstance(event, GenerationCompleted):
            self.end(gid, event.status or "failed", event.error)
        elif isinstance(event, GenerationCancelled):
            self.end(gid, "cancelled", None)

    def sync(self) -> None:
        """Read the rows of those still pending: their events may be gone from the server."""
        for gid in self.pending:
            try:
                row = self.target.get(gid)
            except httpx.TransportError:
                return  # gone again right after the stream opened: the next reconnect re-reads
            if row["status"] in ENDED:
                self.end(gid, row["status"], row.get("error_message"))

    def end(self, gid: str, status: str, error: str | None) -> None:
        self.ended.add(gid)
        task = self.tasks[gid]
        if status != "succeeded":
            self.failed += 1
            self.progress.update(task, state=status)
            self.progress.console.print(f"[red]{gid}: {escape(error or status)}[/red]")
            return
        try:
            paths = _save(self.target, gid, self.out)
        except (*_LOST, OSError) as exc:  # the others go on; this one is named at the end
            self.unsaved.append(gid)
            self.progress.update(task, state="not saved")
            self.progress.console.print(f"[red]{gid}: succeeded, but not saved: "
                                        f"{escape(_save_error(exc))}[/red]")
            return
        total = next(t.total for t in self.progress.tasks if t.id == task) or 1  # full bar
        self.progress.update(task, state="done", total=total, completed=total)
        for path in paths:
            self.progress.console.print(f"saved {path}")


def _save_error(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot write {exc.filename or 'the file'}: {exc.strerror or exc}"
    return error_text(exc)


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
