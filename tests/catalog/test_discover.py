"""``catalog.discover``'s reading of ``--set KEY=VALUE`` and its writing of the values as TOML (the
CLI's end-to-end tests are in ``tests/cli/test_models_local.py``)."""

from __future__ import annotations

import datetime
import math
import tomllib

import pytest

from imagehub.catalog.discover import _value, parse_setting
from imagehub.errors import InvalidParams


@pytest.mark.parametrize(("text", "expected"), [
    ("compile=regional", ("compile", "regional")),  # not TOML: the text as it is
    ("cuda_graphs=true", ("cuda_graphs", True)),
    (" warmup_batches = [1, 8, 16] ", ("warmup_batches", [1, 8, 16])),
    ('tiny_vae="/models/taesd"', ("tiny_vae", "/models/taesd")),
    ("tiny_vae=/models/taesd", ("tiny_vae", "/models/taesd")),
    ("defaults={guidance_scale = 0.0}", ("defaults", {"guidance_scale": 0.0})),
    ("description=a=b", ("description", "a=b")),  # split at the first '='
])
def test_parse_setting(text: str, expected: tuple[str, object]) -> None:
    assert parse_setting(text) == expected


@pytest.mark.parametrize("text", ["compile", "=x", "compile=", "a b=1", "models.x=1"])
def test_parse_setting_refuses_what_is_not_key_value(text: str) -> None:
    with pytest.raises(InvalidParams, match=r"^--set: .* is not KEY=VALUE"):
        parse_setting(text)


@pytest.mark.parametrize("value", [
    "text with \"quotes\" and \\ and 😀 and \x7f", True, 3, -2.5, 1e100, math.inf, -math.inf,
    [1, "two", [3.0]], {"num_inference_steps": 2, "odd key": "x"},
    datetime.date(2026, 11, 28), datetime.datetime(2026, 11, 28, 12, 0, 1),
])
def test_values_are_written_as_toml_reads_them_back(value: object) -> None:
    assert tomllib.loads(f"v = {_value(value)}")["v"] == value


def test_nan_is_written_as_toml_nan() -> None:
    assert math.isnan(tomllib.loads(f"v = {_value(math.nan)}")["v"])


def test_a_config_value_of_the_wrong_kind_is_listed_not_servable_and_refused_by_add(
        tiny_sd_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One bad config in the Hugging Face cache must not stop a scan of everything else."""
    import json
    import shutil

    from imagehub.catalog.discover import add, scan
    from imagehub.errors import ModelUnavailable

    folder = tmp_path / "models" / "odd"
    shutil.copytree(tiny_sd_dir, folder)
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, "sample_size": "sixty-four"}))
    [found] = scan(cache_dir=tmp_path / "no-cache", folders=[tmp_path / "models"])
    assert found.problem == (f"{folder}: a config file holds a value imagehub cannot read "
                             "(ValueError: invalid literal for int() with base 10: 'sixty-four')")
    with pytest.raises(ModelUnavailable, match="a config file holds a value imagehub cannot read"):
        add(tmp_path / "models.toml", str(folder))
    assert not (tmp_path / "models.toml").exists()
