"""``imagehub train builtin`` and ``imagehub eval builtin``: the built-in model's own commands.

The main CLI mounts ``train_app`` as ``train`` and ``eval_app`` as ``eval``. The work happens
in :func:`imagehub.engines.builtin.train.train` and
:func:`imagehub.engines.builtin.evaluate.evaluate`, callable from Python as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

train_app = typer.Typer(help="Train a model that imagehub trains itself.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a model against its own checks.", no_args_is_help=True)


@train_app.callback()
def _train_group() -> None:
    """Train a model that imagehub trains itself."""


@eval_app.callback()
def _eval_group() -> None:
    """Evaluate a model against its own checks."""


@train_app.command("builtin")
def train_builtin(
    out_dir: Path = typer.Option(Path("var/imagehub-tiny"), "--out", help="Where to write the weights."),
    seed: int | None = typer.Option(None, help="Seed of captions, order and initialisation "
                                                "(default 1234: the shipped model's)."),
    captions: int | None = typer.Option(None, help="Training captions to write and encode "
                                                    "(default 16000)."),
    epochs: int | None = typer.Option(None, help="Passes over the captions (default 10)."),
    threads: int | None = typer.Option(None, help="CPU threads for torch (1 shares the machine "
                                                  "best)."),
) -> None:
    """Train imagehub-tiny from procedurally written captions (CPU, reproducible from --seed).

    With no options this reproduces the shipped weights; copy them over
    src/imagehub/engines/builtin/weights/ (or pass that as --out) to ship a new model.
    """
    from dataclasses import replace

    from imagehub.engines.builtin.train import TrainSettings, train

    given = {"seed": seed, "captions": captions, "epochs": epochs, "threads": threads}
    settings = replace(TrainSettings(), **{k: v for k, v in given.items() if v is not None})
    train(out_dir, settings, log=typer.echo)


@eval_app.command("builtin")
def eval_builtin(
    weights_dir: Path | None = typer.Option(None, "--weights", help="Weights directory (default: shipped)."),
    prompts: int = typer.Option(400, help="Held-out prompts to render and grade."),
    seed: int = typer.Option(2026, help="Seed of the prompt set and the images."),
    resolution: str = typer.Option("512", help="Resolution to render at (512, 1K, 2K, 4K)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    check: bool = typer.Option(False, help="Exit 1 when an attribute is below its target."),
) -> None:
    """Render held-out prompts, read the images back with the world's detector, print accuracy."""
    from imagehub.engines.builtin.evaluate import evaluate, format_report

    _check_eval_options(weights_dir, resolution)
    report = evaluate(weights_dir, prompts=prompts, seed=seed, resolution=resolution)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if check and not report["passed"]:
        raise typer.Exit(1)


def _check_eval_options(weights_dir: Path | None, resolution: str) -> None:
    """What would otherwise fail minutes in, as one ``error:`` line."""
    from imagehub.catalog.sizes import RESOLUTION_BASES
    from imagehub.cli.target import fail
    from imagehub.engines.builtin.engine import BuiltinEngine

    if resolution not in RESOLUTION_BASES:
        fail(f"--resolution {resolution!r}: expected one of {', '.join(RESOLUTION_BASES)}")
    unavailable = BuiltinEngine(weights_dir).availability()
    if unavailable:
        fail(f"--weights {weights_dir}: {unavailable}" if weights_dir else unavailable)
