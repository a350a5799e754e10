"""DiffusersEngine.generate_batch: one pipeline call for many requests, each with its own seeds,
progress, cancel and result."""

from __future__ import annotations

import numpy as np
import pytest

from imagehub.engines.base import BatchingEngine, EngineRequest, EngineResult, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.errors import GenerationCancelled, InvalidParams

TOLERANCE = 3  # of 255: batched matmuls round differently from single ones


def request(seed: int, prompt: str = "a red cat on a chair", **fields: object) -> EngineRequest:
    fields.setdefault("num_inference_steps", 2)
    return EngineRequest(prompt=prompt, width=256, height=256, seed=seed, **fields)  # type: ignore[arg-type]


def as_array(result: EngineResult | Exception) -> np.ndarray:
    assert isinstance(result, EngineResult), result
    return np.asarray(result.images[0]).astype(np.int16)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_batched_pixels_equal_solo_pixels(family, tiny_engine):
    engine = tiny_engine(family)
    requests = [request(1, "a red cat"), request(2, "a blue dog", negative_prompt=None),
                request(3, "a green ox")]

    batched = engine.generate_batch(requests, [no_progress] * 3)
    solo = [engine.generate(r, no_progress) for r in requests]

    assert isinstance(engine, BatchingEngine)
    for b, s in zip(batched, solo, strict=True):
        assert np.abs(as_array(b) - as_array(s)).max() <= TOLERANCE
    assert np.abs(as_array(batched[0]) - as_array(batched[1])).max() > 20  # seeds differ


def test_each_request_gets_its_own_progress_in_step_order(tiny_engine):
    engine = tiny_engine("sd")
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: []}

    engine.generate_batch([request(1, num_inference_steps=3), request(2, num_inference_steps=3)],
                          [lambda s, t, n=n: seen[n].append((s, t)) for n in (0, 1)])

    assert seen == {0: [(1, 3), (2, 3), (3, 3)], 1: [(1, 3), (2, 3), (3, 3)]}


def test_the_last_step_is_reported_once_the_images_are_decoded(tiny_engine):
    """"Step n of n" means the device work is done (where the service hands the model to the next
    batch, ENGINE_HANDOFF): every earlier step comes before the decode, the last one after it."""
    engine = tiny_engine("sd")
    engine.load()
    decodes: list[int] = []
    hook = engine.pipeline.vae.decoder.register_forward_hook(lambda *_: decodes.append(1))
    seen: list[tuple[int, int, int]] = []
    try:
        outcomes = engine.generate_batch(
            [request(1, num_inference_steps=3), request(2, num_inference_steps=3)],
            [lambda s, t: seen.append((s, t, len(decodes))), no_progress])
    finally:
        hook.remove()

    assert all(isinstance(o, EngineResult) for o in outcomes)
    assert seen == [(1, 3, 0), (2, 3, 0), (3, 3, 1)]


def test_a_cancel_at_the_last_step_still_drops_the_images(tiny_engine):
    engine = tiny_engine("sd")

    def cancel_at_the_end(step: int, total: int) -> None:
        if step == total:
            raise GenerationCancelled("job-1")

    outcomes = engine.generate_batch([request(1), request(2)], [cancel_at_the_end, no_progress])

    assert isinstance(outcomes[0], GenerationCancelled)
    assert isinstance(outcomes[1], EngineResult)


def test_a_cancel_inside_a_batch_drops_that_request_only(tiny_engine):
    engine = tiny_engine("sd")
    steps: list[tuple[int, int]] = []

    def cancel_at_two(step: int, total: int) -> None:
        steps.append((step, total))
        if step == 2:
            raise GenerationCancelled("job-2")

    requests = [request(1, num_inference_steps=4), request(2, num_inference_steps=4),
                request(3, num_inference_steps=4)]
    outcomes = engine.generate_batch(requests, [no_progress, cancel_at_two, no_progress])
    solo = engine.generate(requests[2], no_progress)

    assert isinstance(outcomes[1], GenerationCancelled)
    assert steps == [(1, 4), (2, 4)]  # no progress after it left
    assert isinstance(outcomes[0], EngineResult) and isinstance(outcomes[2], EngineResult)
    assert np.abs(as_array(outcomes[2]) - as_array(solo)).max() <= TOLERANCE


def test_when_every_request_cancels_the_run_stops(tiny_engine):
    engine = tiny_engine("sd")
    calls: list[int] = []

    def cancel(step: int, total: int) -> None:
        calls.append(step)
        raise GenerationCancelled()

    outcomes = engine.generate_batch([request(1, num_inference_steps=5)] * 2, [cancel, cancel])

    assert all(isinstance(o, GenerationCancelled) for o in outcomes)
    assert calls == [1, 1]


def test_a_refused_request_does_not_spoil_the_batch(tiny_engine):
    engine = tiny_engine("sd")

    outcomes = engine.generate_batch([request(1), request(2, num_images=9)], [no_progress] * 2)

    assert isinstance(outcomes[0], EngineResult) and len(outcomes[0].images) == 1
    assert isinstance(outcomes[1], InvalidParams)


def test_mixed_requests_run_grouped_and_come_back_in_order(tiny_engine):
    engine = tiny_engine("sd")
    requests = [request(1, num_inference_steps=1), request(2, num_images=2),
                EngineRequest(prompt="wide", width=512, height=256, seed=3, num_inference_steps=1)]

    outcomes = engine.generate_batch(requests, [no_progress] * 3)

    sizes = [[image.size for image in o.images] for o in outcomes if isinstance(o, EngineResult)]
    assert sizes == [[(256, 256)], [(256, 256), (256, 256)], [(512, 256)]]
    assert [o.info["num_inference_steps"] for o in outcomes] == [1, 2, 1]  # type: ignore[union-attr]


def test_a_batch_is_padded_up_to_its_bucket_and_the_padding_is_dropped(tiny_model, tiny_engine):
    # static shapes for compiled CUDA graphs: the denoiser only ever sees the bucket sizes
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", batch_buckets=[4, 8])
    requests = [request(1, "a red cat", guidance_scale=1.0),  # no CFG: one UNet row per image
                request(2, "a blue dog", guidance_scale=1.0, num_images=2)]
    seen: list[int] = []
    engine.load()
    hook = engine.pipeline.unet.register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].shape[0]))
    try:
        padded = engine.generate_batch(requests, [no_progress] * 2)
    finally:
        hook.remove()
    solo = [tiny_engine("sd").generate(r, no_progress) for r in requests]

    assert seen == [4, 4]  # 3 images, 2 steps
    assert [len(r.images) for r in padded] == [1, 2]  # type: ignore[union-attr]
    for p, s in zip(padded, solo, strict=True):
        assert isinstance(p, EngineResult) and p.info["batch_size"] == 3
        assert p.info["padded_to"] == 4
        for mine, theirs in zip(p.images, s.images, strict=True):
            diff = np.abs(np.asarray(mine).astype(np.int16) - np.asarray(theirs).astype(np.int16))
            assert diff.max() <= TOLERANCE


def test_compiling_pads_to_the_warm_up_sizes_and_bad_buckets_are_named(tiny_model):
    from imagehub.engines.diffusers.loading import SpeedOptions

    assert SpeedOptions(compile="regional", warmup_batches=(16, 1, 4)).buckets == (1, 4, 16)
    assert SpeedOptions(compile="regional", warmup_batches=(1, 4, 16)).padded(5) == 16
    assert SpeedOptions(compile="regional", warmup_batches=(1, 4)).padded(9) == 9  # runs as is
    assert SpeedOptions(warmup_batches=(1, 4)).buckets == ()  # eager: no reason to pad
    with pytest.raises(ValueError, match=r"batch_buckets must be positive whole numbers, not \[0, 4\]"):
        DiffusersEngine(str(tiny_model("sd")), batch_buckets=[0, 4])


def out_of_memory_above(engine: DiffusersEngine, images: int, refused: list[int]):  # type: ignore[no-untyped-def]
    """A UNet hook that, like a GPU, runs out of memory above ``images`` rows per call (the
    refused sizes are appended to ``refused``); remove it with ``.remove()``."""
    import torch

    def memory_limit(_module: object, args: tuple) -> None:
        if args[0].shape[0] > images:
            refused.append(args[0].shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return engine.pipeline.unet.register_forward_pre_hook(memory_limit)


def test_a_batch_that_runs_out_of_memory_is_halved_and_later_batches_stay_under(tiny_model, tiny_engine):
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu")
    engine.load()
    refused: list[int] = []
    hook = out_of_memory_above(engine, 2, refused)
    requests = [request(n, guidance_scale=1.0) for n in range(1, 5)]  # no CFG: a row per image
    try:
        first = engine.generate_batch(requests, [no_progress] * 4)
        second = engine.generate_batch(requests, [no_progress] * 4)
    finally:
        hook.remove()
    solo = [tiny_engine("sd").generate(r, no_progress) for r in requests]

    assert refused == [4]  # tried once, then halved; the second batch never tried 4 again
    assert engine.max_images == 2
    for outcome in first + second:
        assert isinstance(outcome, EngineResult) and outcome.info["batch_size"] == 2
    for f, s in zip(first, solo, strict=True):
        assert np.abs(as_array(f) - as_array(s)).max() <= TOLERANCE


def test_one_request_too_big_for_memory_fails_alone_with_the_error(tiny_model):
    import torch

    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu")
    engine.load()
    hook = out_of_memory_above(engine, 2, [])
    try:
        big, small = engine.generate_batch(
            [request(1, guidance_scale=1.0, num_images=3), request(2, guidance_scale=1.0)],
            [no_progress] * 2)
    finally:
        hook.remove()

    assert isinstance(big, torch.OutOfMemoryError)  # 3 images of one request cannot be split
    assert isinstance(small, EngineResult)


def test_compiling_pads_to_a_ladder_up_to_the_max_batch_by_default():
    from imagehub.engines.diffusers.loading import SpeedOptions, batch_ladder

    assert batch_ladder(1) == (1,)
    assert batch_ladder(10) == (1, 2, 4, 8, 10)
    assert batch_ladder(32) == (1, 2, 4, 8, 12, 16, 24, 32)
    assert batch_ladder(64) == (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
    compiled = SpeedOptions(compile="regional", max_batch_size=32)
    assert compiled.warmups == compiled.buckets == batch_ladder(32)
    assert [compiled.padded(n) for n in (3, 5, 17, 25, 32)] == [4, 8, 24, 32, 32]
    assert SpeedOptions(compile="regional", max_batch_size=32, warmup_batches=(1, 16)).buckets \
        == (1, 16)  # the card's own sizes win
    assert SpeedOptions(compile="regional", max_batch_size=32, batch_buckets=(8, 1)).warmups \
        == (1, 8)  # its buckets are what it will see: those are warmed up
    assert SpeedOptions(max_batch_size=32).buckets == SpeedOptions(max_batch_size=32).warmups == ()
    with pytest.raises(ValueError, match="max_batch_size must be a positive whole number, not 0"):
        SpeedOptions(max_batch_size=0)
