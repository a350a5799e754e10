"""What each pipeline class's ``__call__`` takes is kept per diffusers version
(``loading.SIGNATURE_CACHE``): a later process reads a model's layout without importing diffusers
(seconds at every server start with a local model, and every ``models add``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagehub.engines.diffusers import loading

# In a fresh process: the layout of FOLDER with the cache at CACHE (defaults that are not plain
# JSON are not kept), and whether reading it imported diffusers.
_READ = """
import json, sys
from pathlib import Path
from imagehub.engines.diffusers import loading
loading.SIGNATURE_CACHE = Path(sys.argv[2])
layout = loading.read_layout(Path(sys.argv[1]))
print(json.dumps({"imported": "diffusers" in sys.modules, "family": layout.family,
                  "pipeline": layout.pipeline_name, "native": layout.native_base,
                  "params": {n: repr(p.default) if loading._plain(p.default) else None
                             for n, p in layout.call_params.items()}}))
"""


def _read_fresh(folder: Path, cache: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _READ, str(folder), str(cache)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    before = loading.SIGNATURE_CACHE
    loading.SIGNATURE_CACHE = tmp_path / "cache"
    yield loading.SIGNATURE_CACHE
    loading.SIGNATURE_CACHE = before


def test_a_kept_signature_is_read_without_importing_diffusers(
        tiny_model: Callable[..., Path], cache: Path) -> None:
    folder = tiny_model("sd")
    first = _read_fresh(folder, cache)  # reads the class, and keeps what it takes
    (kept,) = cache.glob("diffusers-*-call-parameters.json")
    assert "StableDiffusionPipeline" in json.loads(kept.read_text())
    second = _read_fresh(folder, cache)
    assert first["imported"] is True and second["imported"] is False
    assert {k: v for k, v in second.items() if k != "imported"} == \
        {k: v for k, v in first.items() if k != "imported"}
    assert second["params"]["num_inference_steps"] == "50"  # the defaults the schema reads


def test_every_family_reads_the_same_from_the_cache_as_from_the_class(
        tiny_model: Callable[..., Path], cache: Path) -> None:
    for family in ("sd", "sdxl", "sd3", "flux"):
        folder = tiny_model(family)
        loading.SIGNATURE_CACHE = None
        direct = loading.read_layout(folder)
        loading.SIGNATURE_CACHE = cache
        loading.read_layout(folder)  # kept
        kept = loading.read_layout(folder)  # read back
        assert _comparable(kept) == _comparable(direct), family


def _comparable(layout: loading.Layout) -> tuple[object, ...]:
    """A layout as the engine reads it: its fields, and each parameter's kind and default where
    that is plain JSON (annotations, and defaults such as ``["latents"]``, are not kept)."""
    params = {name: (p.kind, p.default if loading._plain(p.default) else None)
              for name, p in layout.call_params.items()}
    fields = {k: v for k, v in vars(layout).items() if k != "call_params"}
    return fields, params


def test_a_damaged_cache_is_read_from_the_classes_again_and_mended(
        tiny_model: Callable[..., Path], cache: Path) -> None:
    folder = tiny_model("sd")
    loading.read_layout(folder)
    (path,) = cache.glob("diffusers-*-call-parameters.json")
    for damage in ("{not json", json.dumps({"StableDiffusionPipeline": [{"name": "prompt"}]})):
        path.write_text(damage)
        layout = loading.read_layout(folder)
        assert "callback_on_step_end" in layout.call_params
    loading.read_layout(folder)
    assert {p["name"] for p in json.loads(path.read_text())["StableDiffusionPipeline"]} == \
        set(layout.call_params)


def test_an_unwritable_cache_only_costs_the_import(tiny_model: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    loading.SIGNATURE_CACHE = blocked / "cache"  # under a file: cannot be made
    try:
        assert loading.read_layout(tiny_model("sd")).family == "sd"
    finally:
        loading.SIGNATURE_CACHE = None
