"""Image-to-image for the SD and SDXL families: input_image with strength, from the same components."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagehub.engines.base import EngineRequest, EngineResult, no_progress
from imagehub.errors import InvalidParams

TOLERANCE = 3


def source_image(colour: tuple[int, int, int] = (200, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (256, 256), colour)
    for x in range(0, 256, 32):  # some structure: stripes
        image.paste((20, 20, 220), (x, 0, x + 8, 256))
    return image


def request(image: Image.Image | None, strength: float | None, steps: int = 4,
            seed: int = 9) -> EngineRequest:
    params = {} if strength is None else {"strength": strength}
    return EngineRequest(prompt="a red cat", width=256, height=256, seed=seed,
                         num_inference_steps=steps, input_images=[image] if image else [],
                         params=params)


def array(result: EngineResult | Exception) -> np.ndarray:
    assert isinstance(result, EngineResult), result
    return np.asarray(result.images[0]).astype(np.int16)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_strength_zero_returns_the_input(family, tiny_engine):
    image = source_image()

    result = tiny_engine(family).generate(request(image, 0.0), no_progress)

    assert np.abs(array(result) - np.asarray(image).astype(np.int16)).max() <= TOLERANCE
    assert result.info["strength"] == 0.0 and result.info["num_inference_steps"] == 0


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_strength_one_ignores_the_input(family, tiny_engine):
    engine = tiny_engine(family)

    red = engine.generate(request(source_image((200, 40, 40)), 1.0), no_progress)
    green = engine.generate(request(source_image((40, 200, 40)), 1.0), no_progress)
    text_only = engine.generate(request(None, None), no_progress)

    assert np.array_equal(array(red), array(green))
    assert np.abs(array(red) - array(text_only)).max() <= TOLERANCE


def test_a_middle_strength_starts_from_the_input_and_reports_its_steps(tiny_engine):
    engine = tiny_engine("sd")
    steps: list[tuple[int, int]] = []

    red = engine.generate(request(source_image((200, 40, 40)), 0.25, steps=8),
                          lambda s, t: steps.append((s, t)))
    green = engine.generate(request(source_image((40, 200, 40)), 0.25, steps=8), no_progress)
    text_only = engine.generate(request(None, None, steps=8), no_progress)

    assert steps == [(1, 2), (2, 2)]  # a quarter of 8 steps
    assert np.abs(array(red) - array(green)).max() > 4 * TOLERANCE  # the input matters
    assert np.abs(array(red) - array(text_only)).max() > 4 * TOLERANCE
    assert red.info["strength"] == 0.25 and red.images[0].size == (256, 256)


def test_image_to_image_batches_with_solo_pixels(tiny_engine):
    engine = tiny_engine("sd")
    requests = [request(source_image((200, 40, 40)), 0.5, seed=1),
                request(source_image((40, 200, 40)), 0.5, seed=2),
                request(None, None, seed=3)]

    batched = engine.generate_batch(requests, [no_progress] * 3)

    for b, r in zip(batched, requests, strict=True):
        assert np.abs(array(b) - array(engine.generate(r, no_progress))).max() <= TOLERANCE


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_the_schema_lists_input_image_and_strength_for_sd_and_sdxl(family, tiny_engine):
    props = tiny_engine(family).schema_properties()
    assert props["input_image"]["type"] == "string"
    assert props["strength"] | {} == {**props["strength"], "minimum": 0, "maximum": 1}


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_families_without_image_to_image_neither_list_nor_take_an_input_image(family, tiny_engine):
    engine = tiny_engine(family)
    assert "input_image" not in engine.schema_properties()
    assert "strength" not in engine.schema_properties()
    with pytest.raises(InvalidParams, match="text-to-image model; it takes no input_images"):
        engine.generate(request(source_image(), 0.5), no_progress)


def test_too_few_denoising_steps_are_refused_by_name(tiny_engine):
    with pytest.raises(InvalidParams, match=r"strength x num_inference_steps .* not 0.5 x 1"):
        tiny_engine("sd").generate(request(source_image(), 0.5, steps=1), no_progress)


def _saved_as(folder, target, changes):  # type: ignore[no-untyped-def]
    """A copy of ``folder`` whose model_index.json has ``changes``."""
    import json
    import shutil

    shutil.copytree(folder, target)
    index = json.loads((target / "model_index.json").read_text())
    (target / "model_index.json").write_text(json.dumps({**index, **changes}))
    return target


def test_a_checkpoint_saved_as_an_image_to_image_pipeline_serves_both_ways(tiny_model, tmp_path):
    """``StableDiffusionImg2ImgPipeline.save_pretrained`` writes the text-to-image components
    under another class name: loaded as the text-to-image pipeline, it draws from text and
    edits an image."""
    from imagehub.engines.diffusers import DiffusersEngine

    folder = _saved_as(tiny_model("sd"), tmp_path / "img2img",
                       {"_class_name": "StableDiffusionImg2ImgPipeline"})
    engine = DiffusersEngine(str(folder), device="cpu")
    assert engine.availability() is None and engine.layout().family == "sd"
    assert {"input_image", "strength"} <= set(engine.schema_properties())
    from_text = engine.generate(request(None, None), no_progress)
    edited = engine.generate(request(source_image(), 0.0), no_progress)
    assert isinstance(from_text, EngineResult) and from_text.images[0].size == (256, 256)
    assert np.abs(array(edited) - np.asarray(source_image()).astype(np.int16)).max() <= TOLERANCE
    engine.unload()


@pytest.mark.parametrize("changes", [{"text_encoder": [None, None], "tokenizer": [None, None]},
                                     {"requires_aesthetics_score": True}])
def test_an_sdxl_refiner_is_unavailable_saying_so(tiny_model, tmp_path, changes):
    from imagehub.engines.diffusers import DiffusersEngine

    folder = _saved_as(tiny_model("sdxl"), tmp_path / "refiner",
                       {"_class_name": "StableDiffusionXLImg2ImgPipeline", **changes})
    reason = DiffusersEngine(str(folder), device="cpu").availability()
    assert reason == (f"{folder} is an SDXL refiner (no first text encoder, or "
                      "requires_aesthetics_score): it only refines images, and is not served; "
                      "serve the SDXL base model")


def test_an_sdxl_base_saved_as_image_to_image_serves(tiny_model, tmp_path):
    from imagehub.engines.diffusers import DiffusersEngine

    folder = _saved_as(tiny_model("sdxl"), tmp_path / "sdxl-img2img",
                       {"_class_name": "StableDiffusionXLImg2ImgPipeline"})
    engine = DiffusersEngine(str(folder), device="cpu")
    edited = engine.generate(request(source_image(), 0.0), no_progress)
    assert np.abs(array(edited) - np.asarray(source_image()).astype(np.int16)).max() <= TOLERANCE
    engine.unload()
