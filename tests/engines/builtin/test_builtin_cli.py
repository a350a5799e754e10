"""``imagehub train builtin`` / ``imagehub eval builtin`` as typer sub-apps."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from imagehub.cli.builtin import eval_app, train_app


def test_eval_builtin_prints_accuracy_per_attribute() -> None:
    result = CliRunner().invoke(eval_app, ["builtin", "--prompts", "8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["prompts"] == 8
    assert {"colour", "shape", "count"} <= set(report["accuracy"])
    assert all(0.0 <= v <= 1.0 for v in report["accuracy"].values())


def test_train_builtin_is_a_subcommand() -> None:
    result = CliRunner().invoke(train_app, ["builtin", "--help"])
    assert result.exit_code == 0
    assert "--captions" in result.output and "--seed" in result.output
