"""DiffusersEngine over tiny random pipelines of each family, loaded through the real loader."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from imagehub.catalog.sizes import ASPECT_RATIOS, output_size
from imagehub.engines.base import Engine, EngineRequest, no_progress
from imagehub.engines.diffusers import DiffusersEngine
from imagehub.errors import GenerationCancelled, InvalidParams, ModelUnavailable

FAMILIES = ["sd", "sdxl", "sd3", "flux"]
PIPELINES = {
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
}


def request(width: int = 256, height: int = 256, seed: int = 7, **fields: object) -> EngineRequest:
    fields.setdefault("num_inference_steps", 2)
    return EngineRequest(
        prompt="a red cat on a chair", width=width, height=height, seed=seed, **fields
    )  # type: ignore[arg-type]


def pixels(engine: DiffusersEngine, req: EngineRequest) -> list[np.ndarray]:
    return [np.asarray(image) for image in engine.generate(req, no_progress).images]


# -- generation --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_renders_at_native_size_and_reports_every_step(family, tiny_engine):
    engine = tiny_engine(family)
    steps: list[tuple[int, int]] = []

    result = engine.generate(request(), lambda step, total: steps.append((step, total)))

    assert isinstance(engine, Engine)
    assert [image.size for image in result.images] == [(256, 256)]
    assert result.images[0].mode == "RGB"
    assert steps == [(1, 2), (2, 2)]
    assert result.info["pipeline"] == PIPELINES[family]
    assert (result.info["native_width"], result.info["native_height"]) == (256, 256)
    assert result.info["num_inference_steps"] == 2


@pytest.mark.parametrize(
    ("resolution", "aspect_ratio"),
    [("512", "16:9"), ("1K", "9:16"), ("512", "21:9"), ("1K", "1:8")],
)
def test_output_is_exactly_the_asked_size_scaled_from_the_native_size(
    resolution, aspect_ratio, tiny_engine
):
    engine = tiny_engine("sd")
    width, height = output_size(resolution, aspect_ratio)

    result = engine.generate(request(width, height), no_progress)

    assert [image.size for image in result.images] == [(width, height)]
    native_w, native_h = result.info["native_width"], result.info["native_height"]
    assert native_w % 16 == 0 and native_h % 16 == 0
    assert native_w * native_h <= 1.25 * 256 * 256  # native area (256²), not the asked one
    assert abs(native_w / native_h - width / height) / (width / height) < 0.2


def test_sd3_native_size_stays_inside_its_position_embedding_table(tiny_engine):
    engine = tiny_engine("sd3")
    layout = engine.layout()
    assert layout.max_side == 32 * 2 * 8  # pos_embed_max_size x patch x VAE factor
    width, height = output_size("512", "8:1")  # native 8:1 at base 256 would be 720 wide

    result = engine.generate(request(width, height), no_progress)

    assert result.images[0].size == (width, height)
    assert max(result.info["native_width"], result.info["native_height"]) <= layout.max_side


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_pixels_different_seed_different_pixels(family, tiny_engine):
    engine = tiny_engine(family)

    first = pixels(engine, request(seed=11))
    again = pixels(engine, request(seed=11))
    other = pixels(engine, request(seed=12))

    assert np.array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])


def test_a_batch_is_seeded_per_image_and_reproducible(tiny_engine):
    engine = tiny_engine("sd")

    batch = pixels(engine, request(seed=3, num_images=2))
    again = pixels(engine, request(seed=3, num_images=2))

    assert len(batch) == 2
    assert all(np.array_equal(a, b) for a, b in zip(batch, again, strict=True))
    assert not np.array_equal(batch[0], batch[1])


def test_fields_reach_the_pipeline(tiny_engine):
    engine = tiny_engine("sd")
    plain = pixels(engine, request())

    negative = pixels(engine, request(negative_prompt="blurry"))
    guided = engine.generate(request(guidance_scale=2.0), no_progress)

    assert not np.array_equal(plain[0], negative[0])
    assert guided.info["guidance_scale"] == 2.0
    assert not np.array_equal(plain[0], np.asarray(guided.images[0]))


def test_cancel_at_step_two_stops_the_run_and_propagates(tiny_engine):
    engine = tiny_engine("sd")
    seen: list[int] = []

    def on_step(step: int, total: int) -> None:
        seen.append(step)
        if step == 2:
            raise GenerationCancelled()

    with pytest.raises(GenerationCancelled):
        engine.generate(request(num_inference_steps=5), on_step)

    assert seen == [1, 2]
    assert engine.generate(request(), no_progress).images  # the engine still serves afterwards


def test_requests_the_engine_cannot_serve_are_refused(tiny_engine):
    engine = tiny_engine("sd")
    with pytest.raises(InvalidParams, match="num_images must be 1 to 4, not 5"):
        engine.generate(request(num_images=5), no_progress)


def test_tiny_sd_256_two_step_render_is_fast(tiny_engine):
    engine = tiny_engine("sd")
    engine.generate(request(), no_progress)  # warm-up

    started = time.perf_counter()
    engine.generate(request(), no_progress)
    elapsed = time.perf_counter() - started

    print(f"tiny SD 256² 2-step render: {elapsed:.3f} s")
    assert elapsed < 5.0


# -- schema ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_schema_is_plain_json_schema_with_order_and_descriptions(family, tiny_model):
    props = DiffusersEngine(str(tiny_model(family))).schema_properties()

    assert json.loads(json.dumps(props)) == props
    for name, prop in props.items():
        assert {"type", "description", "x-order"} <= prop.keys(), name
    assert sorted(p["x-order"] for p in props.values()) == [
        p["x-order"] for p in sorted(props.values(), key=lambda p: p["x-order"])
    ]
    assert len({p["x-order"] for p in props.values()}) == len(props)
    assert props["aspect_ratio"]["enum"] == ASPECT_RATIOS
    # models that take an input image keep its shape by default
    assert props["aspect_ratio"]["default"] == ("auto" if family in ("sd", "sdxl") else "1:1")
    assert props["resolution"]["enum"] == ["512", "1K", "2K", "4K"]
    assert props["resolution"]["default"] == "512"  # native 256 is nearest to 512
    assert props["seed"] == {**props["seed"], "type": "integer", "minimum": 0}
    assert props["num_inference_steps"]["minimum"] == 1
    assert props["num_inference_steps"]["maximum"] == 150

    schema = {"type": "object", "properties": props}
    jsonschema.Draft202012Validator.check_schema(schema)
    defaults = {k: p["default"] for k, p in props.items() if "default" in p}
    jsonschema.validate(defaults, schema)


def test_schema_publishes_negative_prompt_and_guidance_only_where_they_act(tiny_model):
    sd = DiffusersEngine(str(tiny_model("sd"))).schema_properties()
    sdxl = DiffusersEngine(str(tiny_model("sdxl"))).schema_properties()
    sd3 = DiffusersEngine(str(tiny_model("sd3"))).schema_properties()
    flux = DiffusersEngine(str(tiny_model("flux"))).schema_properties()
    schnell = DiffusersEngine(str(tiny_model("flux", guidance_embeds=False))).schema_properties()

    for props in (sd, sdxl, sd3):
        assert props["negative_prompt"]["type"] == "string"
        assert props["guidance_scale"]["type"] == "number"
        assert (props["guidance_scale"]["minimum"], props["guidance_scale"]["maximum"]) == (0, 30)
    assert "negative_prompt" not in flux  # Flux ignores it without true CFG
    assert flux["guidance_scale"]["default"] == 3.5
    assert "negative_prompt" not in schnell and "guidance_scale" not in schnell
    assert schnell["num_inference_steps"]["default"] == 4
    assert (sd["num_inference_steps"]["default"], sd["guidance_scale"]["default"]) == (30, 7.5)
    assert sdxl["guidance_scale"]["default"] == 5.0


def test_turbo_models_default_to_one_step_without_guidance(tiny_model, tmp_path):
    turbo = tmp_path / "sd-turbo"
    shutil.copytree(tiny_model("sd"), turbo)

    props = DiffusersEngine(str(turbo)).schema_properties()

    assert props["num_inference_steps"]["default"] == 1
    assert props["guidance_scale"]["default"] == 0.0


def test_schnell_generate_passes_no_guidance(tiny_engine):
    result = tiny_engine("flux", guidance_embeds=False).generate(request(), no_progress)
    assert "guidance_scale" not in result.info
    assert result.images[0].size == (256, 256)


# -- availability, sources, fingerprint --------------------------------------------------------


def test_availability_names_a_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    engine = DiffusersEngine(str(missing))

    assert engine.availability() == f"no diffusers folder at {missing} (no such folder)"
    assert set(engine.schema_properties()) == {"aspect_ratio", "resolution", "seed"}
    with pytest.raises(ModelUnavailable):
        engine.fingerprint()


def test_availability_names_a_missing_model_index(tmp_path):
    engine = DiffusersEngine(str(tmp_path))
    assert engine.availability() == f"no diffusers folder at {tmp_path} (model_index.json missing)"


def test_availability_names_an_unknown_pipeline_class(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("sd"), folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"_class_name": "NoSuchPipeline"}))

    reason = DiffusersEngine(str(folder)).availability()

    assert reason is not None and "NoSuchPipeline" in reason and "not in diffusers" in reason


def test_availability_names_missing_component_folders(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("sd"), folder)
    shutil.rmtree(folder / "unet")

    assert DiffusersEngine(str(folder)).availability() == (
        f"{folder} lacks the component folders unet"
    )


@pytest.mark.parametrize("damage, said", [
    ("garbage", "diffusion_pytorch_model.safetensors is not a readable safetensors file"),
    ("halved", "could not be loaded (OSError: Unable to load weights"),
])
@pytest.mark.parametrize("process", [False, True])
def test_damaged_weights_make_the_model_unavailable_saying_why(tiny_model, tmp_path, damage, said,
                                                                process):
    """Weights cut short by a failed copy, or replaced by junk: a 503 naming the file (the load
    raised struct.error or OSError, a 500), in the server's process or a model's own."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("sd"), folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"garbage" if damage == "garbage" else data[:len(data) // 2])
    engine = DiffusersEngine(str(folder), device="cpu", process=process)
    try:
        with pytest.raises(ModelUnavailable, match=re.escape(said)):
            engine.load()
        assert not engine.loaded
    finally:
        engine.unload()


def test_availability_names_a_repo_missing_from_the_hf_cache(tmp_path):
    engine = DiffusersEngine("hf:imagehub-tests/not-cached", cache_dir=tmp_path)

    reason = engine.availability()

    assert reason is not None
    assert reason.startswith("hf:imagehub-tests/not-cached is not in the local Hugging Face cache")
    assert "IMAGEHUB_ALLOW_HUB_DOWNLOADS" in reason


def test_a_malformed_hf_source_is_named():
    reason = DiffusersEngine("hf:just-a-name").availability()
    assert reason == "source 'hf:just-a-name' is not of the form hf:org/name[@revision]"


def _fake_hf_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay ``folder`` out the way huggingface_hub caches a downloaded snapshot."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_an_hf_source_resolves_in_the_local_cache_and_generates(tiny_model, tmp_path):
    snapshot = _fake_hf_cache(tmp_path, "imagehub-tests/tiny-sd", tiny_model("sd"))
    engine = DiffusersEngine("hf:imagehub-tests/tiny-sd", device="cpu", cache_dir=tmp_path)

    assert engine.availability() is None
    assert engine.layout().folder == snapshot
    assert engine.fingerprint() == DiffusersEngine(str(tiny_model("sd"))).fingerprint()
    assert engine.generate(request(), no_progress).images[0].size == (256, 256)


def test_allowed_downloads_fetch_configs_for_the_schema_and_weights_for_load(
    tiny_model, tmp_path, monkeypatch
):
    import diffusers
    import huggingface_hub

    full = tiny_model("sd")
    configs_only = tmp_path / "configs"
    shutil.copytree(full, configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    calls: list[tuple[str, object]] = []

    def snapshot_download(repo_id, *, local_files_only=False, allow_patterns=None, **kwargs):
        calls.append(("snapshot", allow_patterns))
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(configs_only)

    def download(repo_id, **kwargs):
        calls.append(("pipeline", repo_id))
        return str(full)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", download)
    engine = DiffusersEngine("hf:org/tiny", device="cpu", allow_downloads=True, cache_dir=tmp_path)

    assert engine.availability() is None
    assert "negative_prompt" in engine.schema_properties()
    assert calls == [("snapshot", None), ("snapshot", ["*.json", "*.txt", "*.model"])]
    engine.load()
    assert calls[2:] == [("pipeline", "org/tiny")]  # weights: the hub first, not the config cache
    assert engine.generate(request(), no_progress).images[0].size == (256, 256)


def test_an_unreadable_model_index_is_named(tmp_path):
    (tmp_path / "model_index.json").write_text("{not json")
    reason = DiffusersEngine(str(tmp_path)).availability()
    assert reason is not None and reason.startswith(f"cannot read {tmp_path}/model_index.json")


def test_fingerprint_is_stable_across_copies_and_rebuilds_and_tracks_configs(tiny_model, tmp_path):
    original = tiny_model("sd")
    first = DiffusersEngine(str(original)).fingerprint()
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    from imagehub.engines.diffusers import dummy

    rebuilt = dummy.build_tiny_sd(tmp_path / "rebuilt")

    assert len(first) == 16 and int(first, 16) >= 0
    assert DiffusersEngine(str(original)).fingerprint() == first
    assert DiffusersEngine(str(copy)).fingerprint() == first
    assert DiffusersEngine(str(rebuilt)).fingerprint() == first
    assert DiffusersEngine(str(tiny_model("sdxl"))).fingerprint() != first

    scheduler = copy / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps(json.loads(scheduler.read_text()) | {"steps_offset": 0}))
    assert DiffusersEngine(str(copy)).fingerprint() != first


def test_fingerprint_tells_apart_weights_of_the_same_architecture(tiny_model, tmp_path):
    from imagehub.engines.diffusers import dummy

    other_weights = dummy.build_tiny_sd(tmp_path / "seed-1", seed=1)

    assert DiffusersEngine(str(other_weights)).fingerprint() != (
        DiffusersEngine(str(tiny_model("sd"))).fingerprint()
    )


def test_fingerprint_samples_big_files_instead_of_reading_them(tiny_model, tmp_path):
    from imagehub.engines.diffusers import loading

    folder = tmp_path / "model"
    shutil.copytree(tiny_model("sd"), folder)
    big = folder / "unet" / "extra.bin"
    big.write_bytes(bytes(3 << 20))
    before = loading.fingerprint_folder(folder)
    middle = bytearray(big.read_bytes())
    middle[len(middle) // 2] = 1  # a byte outside the sampled ends
    big.write_bytes(bytes(middle))
    assert loading.fingerprint_folder(folder) == before
    middle[-1] = 1
    big.write_bytes(bytes(middle))
    assert loading.fingerprint_folder(folder) != before


# -- construction ------------------------------------------------------------------------------


def test_importing_the_package_does_not_import_torch():
    code = (
        "import sys, imagehub.engines.diffusers as m; "
        "assert m.__all__ == ['DiffusersEngine']; "
        "print('torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_device_defaults_to_cuda_then_mps_then_cpu(tiny_model, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert DiffusersEngine(str(tiny_model("sd"))).device == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert DiffusersEngine(str(tiny_model("sd"))).device == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert DiffusersEngine(str(tiny_model("sd"))).device == "cuda"
    assert DiffusersEngine(str(tiny_model("sd")), device="cpu").device == "cpu"


def test_dtype_defaults_and_refusals(monkeypatch):
    import torch

    from imagehub.engines.diffusers.loading import resolve_dtype

    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype("fp16", "cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype(None, "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype(None, "cuda:0") == torch.float16
    with pytest.raises(ValueError, match="dtype must be one of bf16, fp16, fp32, not 'int8'"):
        resolve_dtype("int8", "cpu")


def test_concurrent_loads_load_once(tiny_model, monkeypatch):
    from imagehub.engines.diffusers import loading

    calls: list[Path] = []
    real = loading.load_pipeline

    def counting(folder, device, dtype):
        calls.append(folder)
        time.sleep(0.05)  # widen the window a racing second load would need
        return real(folder, device, dtype)

    monkeypatch.setattr(loading, "load_pipeline", counting)
    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", dtype="fp32")

    threads = [threading.Thread(target=engine.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.load()

    assert calls == [tiny_model("sd")]
    pipe = engine.pipeline
    assert pipe is engine.pipeline
    assert pipe.device.type == "cpu"
    assert pipe.unet.dtype.is_floating_point and str(pipe.unet.dtype) == "torch.float32"


def test_load_warm_up_and_every_caller_s_generation_run_on_the_model_s_own_thread(tiny_model):
    # one OpenMP team on a CPU, and compiled CUDA graphs replayed by the thread that captured them
    import torch
    from diffusers import UNet2DConditionModel

    seen: list[int] = []

    def record(module: torch.nn.Module, _args: object) -> None:
        if isinstance(module, UNet2DConditionModel):
            seen.append(threading.get_ident())

    engine = DiffusersEngine(str(tiny_model("sd")), device="cpu", warmup_batches=[2])
    requests = [EngineRequest(prompt="a cat", width=64, height=64, seed=n, num_inference_steps=1)
                for n in range(4)]
    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        engine.load()  # warm-up: one UNet call of a batch of 2
        with ThreadPoolExecutor(4) as callers:
            list(callers.map(lambda r: engine.generate(r, no_progress), requests))
        engine.generate_batch(requests[:2], [no_progress] * 2)
    finally:
        hook.remove()

    assert len(seen) == 1 + 4 + 1
    assert set(seen) == {engine.thread.ident}
    assert engine.thread.ident != threading.get_ident()
