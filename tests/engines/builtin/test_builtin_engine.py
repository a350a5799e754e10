"""The engine contract: sizes, seeds, steps and cancel, schema, availability, cheap import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from imagehub.catalog.sizes import ASPECT_RATIOS, RESOLUTION_BASES, output_size
from imagehub.engines.base import Engine, EngineRequest, no_progress
from imagehub.engines.builtin.engine import BuiltinEngine


def request(prompt: str, seed: int = 1, resolution: str = "512", ratio: str = "1:1",
            n: int = 1, **params) -> EngineRequest:
    width, height = output_size(resolution, ratio)
    return EngineRequest(prompt=prompt, width=width, height=height, seed=seed, num_images=n,
                         params={"resolution": resolution, "aspect_ratio": ratio, **params})


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def test_is_an_engine(engine: BuiltinEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.backend == "builtin"
    assert engine.availability() is None
    assert len(engine.fingerprint()) == 16


def test_every_ratio_and_resolution_gives_the_exact_size(engine: BuiltinEngine) -> None:
    dists = engine.distributions(["a small red star on a white background"])[0]
    for resolution in RESOLUTION_BASES:
        for ratio in ASPECT_RATIOS:
            width, height = output_size(resolution, ratio)
            image, _ = engine.draw(dists, 3, width, height)
            assert image.size == (width, height), (resolution, ratio)
            assert image.mode == "RGB"


def test_generate_returns_the_asked_size(engine: BuiltinEngine) -> None:
    result = engine.generate(request("two green hearts", resolution="1K", ratio="16:9"), no_progress)
    assert [im.size for im in result.images] == [(1360, 768)]
    assert result.info["model"] == "imagehub-tiny"
    assert result.info["seeds"] == [1]


def test_same_seed_same_pixels(engine: BuiltinEngine) -> None:
    first = engine.generate(request("a shape", seed=42), no_progress).images[0]
    again = engine.generate(request("a shape", seed=42), no_progress).images[0]
    assert np.array_equal(pixels(first), pixels(again))


def test_open_attributes_vary_with_the_seed(engine: BuiltinEngine) -> None:
    images = [pixels(engine.generate(request("a shape", seed=s), no_progress).images[0])
              for s in range(4)]
    distinct = {im.tobytes() for im in images}
    assert len(distinct) == 4


def test_each_image_of_a_request_differs(engine: BuiltinEngine) -> None:
    result = engine.generate(request("a blue ring", seed=9, n=4), no_progress)
    assert len(result.images) == 4
    assert result.info["seeds"] == [9, 10, 11, 12]
    assert len({pixels(im).tobytes() for im in result.images}) == 4
    single = engine.generate(request("a blue ring", seed=11), no_progress).images[0]
    assert np.array_equal(pixels(single), pixels(result.images[2]))


def test_steps_are_reported_and_cancel_propagates(engine: BuiltinEngine) -> None:
    steps: list[tuple[int, int]] = []
    engine.generate(request("a star", n=2), lambda i, t: steps.append((i, t)))
    assert steps == [(1, 3), (2, 3), (3, 3)]

    class Cancelled(Exception):
        pass

    def cancel(step: int, total: int) -> None:
        if step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        engine.generate(request("a star", n=3), cancel)


def test_prompts_outside_the_world_still_give_an_image(engine: BuiltinEngine) -> None:
    for prompt in ("a cat astronaut", "!!!", "x" * 2000):
        image = engine.generate(request(prompt), no_progress).images[0]
        assert image.size == (512, 512)


def test_schema_is_valid_json_schema(engine: BuiltinEngine) -> None:
    props = engine.schema_properties()
    document = {"type": "object", "properties": props, "additionalProperties": False}
    Draft202012Validator.check_schema(document)
    assert props["aspect_ratio"]["enum"] == ASPECT_RATIOS
    assert props["resolution"]["enum"] == ["512", "1K", "2K", "4K"]
    assert props["resolution"]["default"] == "1K"
    assert props["seed"]["type"] == "integer"
    orders = [p["x-order"] for p in props.values()]
    assert len(set(orders)) == len(orders)
    assert all("description" in p for p in props.values())
    validator = Draft202012Validator(document)
    assert validator.is_valid({"aspect_ratio": "21:9", "resolution": "4K", "seed": 5, "variety": 0})
    assert not validator.is_valid({"resolution": "8K"})


def test_variety_zero_takes_the_most_likely_reading(engine: BuiltinEngine) -> None:
    scenes = [engine.generate(request("a shape", seed=s, variety=0.0), no_progress).info["scenes"][0]
              for s in range(3)]
    # Only placement moves with the seed; every attribute is the model's most likely reading.
    assert all(scene == scenes[0] for scene in scenes)
    varied = [engine.generate(request("a shape", seed=s, variety=1.0), no_progress).info["scenes"][0]
              for s in range(6)]
    assert any(scene != varied[0] for scene in varied)


def test_missing_weights_are_reported(tmp_path: Path) -> None:
    reason = BuiltinEngine(tmp_path).availability()
    assert reason is not None and "imagehub-tiny.safetensors" in reason


def test_importing_the_package_is_cheap() -> None:
    code = ("import sys, imagehub.engines.builtin as b; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "assert b.BuiltinEngine.backend == 'builtin'; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loads_offline_from_the_package_alone(tmp_path: Path) -> None:
    code = (
        "from imagehub.engines.builtin.engine import BuiltinEngine\n"
        "from imagehub.engines.base import EngineRequest, no_progress\n"
        "r = BuiltinEngine().generate(EngineRequest(prompt='a red star', width=64, height=48,"
        " seed=1), no_progress)\n"
        "assert r.images[0].size == (64, 48)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "empty-hf-home")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
