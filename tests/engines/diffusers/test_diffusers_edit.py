"""Edit pipelines (Flux Kontext): the checkpoint's own pipeline takes the input image; the card
lists input_image only for models that take one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagehub.engines.base import EngineRequest, EngineResult, no_progress
from imagehub.errors import InvalidParams

TOLERANCE = 3


def picture(colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (320, 200), colour)
    image.paste((250, 250, 250), (0, 0, 80, 200))
    return image


def edit(image: Image.Image | None, seed: int = 3, **params: object) -> EngineRequest:
    return EngineRequest(prompt="make the sky green", width=512, height=512, seed=seed,
                         num_inference_steps=2, input_images=[image] if image else [],
                         params=dict(params))


def array(result: EngineResult | Exception) -> np.ndarray:
    assert isinstance(result, EngineResult), result
    return np.asarray(result.images[0]).astype(np.int16)


def test_only_the_edit_model_lists_an_input_image(tiny_engine):
    kontext = tiny_engine("flux", kontext=True).schema_properties()
    flux = tiny_engine("flux").schema_properties()

    assert "input_image" in kontext and "strength" not in kontext  # Kontext takes no strength
    assert "input_image" not in flux


def test_the_input_image_reaches_the_model_and_the_seed_repeats_the_edit(tiny_engine):
    engine = tiny_engine("flux", kontext=True)
    tokens: list[int] = []
    hook = engine.pipeline.transformer.register_forward_pre_hook(
        lambda _m, _args, kwargs: tokens.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)
    try:
        red = engine.generate(edit(picture((220, 30, 30))), no_progress)
        red_again = engine.generate(edit(picture((220, 30, 30))), no_progress)
        blue = engine.generate(edit(picture((30, 30, 220))), no_progress)
        text_only = engine.generate(edit(None), no_progress)
    finally:
        hook.remove()

    # 256² native, VAE factor 2, 2x2 packing: 64² latent tokens, and as many again for the image
    assert tokens == [2 * 64 * 64] * 6 + [64 * 64] * 2
    assert red.images[0].size == text_only.images[0].size == (512, 512)
    assert red.info["pipeline"] == "FluxKontextPipeline" and red.info["native_width"] == 256
    assert np.array_equal(array(red), array(red_again))
    assert np.abs(array(red) - array(blue)).max() > 0  # random weights: the image steers a little


def test_edits_batch_with_solo_pixels(tiny_engine):
    engine = tiny_engine("flux", kontext=True)
    requests = [edit(picture((220, 30, 30)), seed=1), edit(picture((30, 220, 30)), seed=2)]

    batched = engine.generate_batch(requests, [no_progress] * 2)
    solo = [engine.generate(r, no_progress) for r in requests]

    for b, s in zip(batched, solo, strict=True):
        assert np.abs(array(b) - array(s)).max() <= TOLERANCE


def test_a_text_model_refuses_an_input_image(tiny_engine):
    engine = tiny_engine("flux")

    with pytest.raises(InvalidParams, match="text-to-image model; it takes no input_images"):
        engine.generate(edit(picture((220, 30, 30))), no_progress)
