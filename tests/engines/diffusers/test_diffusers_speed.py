"""Speed options of the diffusers engine: each applied at load, pixels kept (within tolerance)
where the option is exact, warm-up done at load so no request compiles."""

from __future__ import annotations

import time

import numpy as np
import pytest

from imagehub.engines.base import EngineRequest, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.errors import ModelUnavailable

TOLERANCE = 3


def request() -> EngineRequest:
    return EngineRequest(prompt="a red cat", width=256, height=256, seed=5, num_inference_steps=2)


def pixels(engine: DiffusersEngine) -> np.ndarray:
    return np.asarray(engine.generate(request(), no_progress).images[0]).astype(np.int16)


@pytest.mark.parametrize("options", [
    {"channels_last": True},
    {"fuse_qkv": True},
    {"attention": "eager"},
    {"channels_last": True, "fuse_qkv": True},
])
def test_exact_options_keep_the_pixels_and_are_recorded(options, tiny_model, tiny_engine):
    plain = pixels(tiny_engine("sd"))
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", **options)

    result = engine.generate(request(), no_progress)

    assert np.abs(np.asarray(result.images[0]).astype(np.int16) - plain).max() <= TOLERANCE
    assert set(result.info["speed"]) == {
        {"channels_last": "channels_last", "fuse_qkv": "fuse_qkv", "attention": "attention=eager"}[k]
        for k in options}


def test_regional_compile_warms_up_at_load_not_at_the_first_request(tiny_model, tiny_engine):
    plain = pixels(tiny_engine("sd"))
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", compile="regional")
    engine.load()  # compiles and renders the warm-up batch
    blocks = [m for m in engine.pipeline.unet.modules()
              if type(m).__name__ == "BasicTransformerBlock"]

    started = time.perf_counter()
    result = engine.generate(request(), no_progress)
    first_request = time.perf_counter() - started

    assert blocks and all(b._compiled_call_impl is not None for b in blocks)
    assert result.info["speed"] == ["compile=regional"]
    assert first_request < 5.0, f"the first request took {first_request:.1f} s: it compiled"
    assert np.abs(np.asarray(result.images[0]).astype(np.int16) - plain).max() <= TOLERANCE


def test_a_local_tiny_vae_replaces_the_decoder(tiny_model, tmp_path):
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
                    latent_channels=4).save_pretrained(tmp_path / "taesd")
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", tiny_vae=str(tmp_path / "taesd"))

    result = engine.generate(request(), no_progress)

    assert type(engine.pipeline.vae).__name__ == "AutoencoderTiny"
    assert result.images[0].size == (256, 256)
    assert result.info["speed"] == ["tiny_vae=taesd"]


def test_tiny_vae_auto_keeps_the_own_vae_when_taesd_is_not_cached(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", tiny_vae="auto")

    result = engine.generate(request(), no_progress)

    assert type(engine.pipeline.vae).__name__ == "AutoencoderKL"
    assert "speed" not in result.info


def test_bad_speed_options_are_named(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="compile must be off, regional or full, not 'max'"):
        DiffusersEngine(str(tiny_model("sd")), compile="max")
    with pytest.raises(ValueError, match="attention must be sdpa or eager"):
        DiffusersEngine(str(tiny_model("sd")), attention="flash")
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", tiny_vae=str(tmp_path / "none"))
    with pytest.raises(ModelUnavailable, match="tiny_vae: no AutoencoderTiny folder at"):
        engine.load()


def test_a_loaded_pipeline_knows_its_device_without_walking_its_modules(tiny_model, monkeypatch):
    """diffusers' ``_execution_device`` walks every module of every component on each call; a
    loaded pipeline answers it from load time, and stays its own class for diffusers' lookups."""
    import torch
    from diffusers import AutoPipelineForImage2Image, StableDiffusionPipeline

    from imagehub.engines.diffusers import loading

    pipe = loading.load_pipeline(tiny_model("sd"), "cpu", torch.float32)
    img2img = loading.pin_execution_device(AutoPipelineForImage2Image.from_pipe(pipe))

    def walked(self):
        raise AssertionError("walked the modules")

    monkeypatch.setattr(torch.nn.Module, "modules", walked)
    assert pipe._execution_device == torch.device("cpu")
    assert img2img._execution_device == torch.device("cpu")
    assert isinstance(pipe, StableDiffusionPipeline)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"


def test_compiling_warms_up_every_call_size_up_to_the_max_batch_by_default(tiny_model):
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # no graphs left by other tests' compiled models
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", compile="regional",
                             max_batch_size=3)
    engine.load()  # renders batches of 1, 2 and 3
    graphs = counters["stats"]["unique_graphs"]

    outcomes = engine.generate_batch([request(), request()], [no_progress] * 2)  # 2 images
    outcomes += engine.generate_batch([request()] * 3, [no_progress] * 3)  # 3 images

    assert engine.speed.warmups == engine.speed.buckets == (1, 2, 3)
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled at a request
    assert [o.info["batch_size"] for o in outcomes] == [2, 2, 3, 3, 3]  # type: ignore[union-attr]
    assert not any("padded_to" in o.info for o in outcomes)  # type: ignore[union-attr]


def test_a_max_batch_past_the_warm_ups_is_warned_of_at_load(tiny_model, caplog):
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", compile="regional",
                             max_batch_size=4, warmup_batches=[1, 2])

    engine.load()

    assert "calls of 3 to 4 images will compile at the first request of each size (the largest " \
        "warm-up batch is 2): add 4 to warmup_batches, or lower max_batch_size" in caplog.text
