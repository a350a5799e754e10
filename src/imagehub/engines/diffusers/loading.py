"""Where a diffusers model lives, what its config files say, and how its pipeline is loaded.

A source is a local diffusers folder (one with ``model_index.json``) or ``hf:org/name[@revision]``,
looked up in the local Hugging Face cache. Nothing is downloaded unless the caller allows it.

:func:`read_layout` answers every question asked before the weights are loaded (pipeline class,
native size, family) from the small JSON files alone, so the catalog can publish a schema and a
fingerprint for a model it has not loaded.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

HF_PREFIX = "hf:"
CONFIG_PATTERNS = ["*.json", "*.txt", "*.model"]
"""What a config-only download fetches: index, configs, tokenizer files; never weights."""

_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}
_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux",
}
_SAMPLE = 1 << 20  # bytes read from each end of a weight file for the fingerprint
_REQUIRED_CALL_PARAMS = ("prompt", "height", "width", "generator", "callback_on_step_end")


@dataclass(frozen=True)
class Layout:
    """What a diffusers folder's JSON files say about the model, read without loading weights."""

    folder: Path
    pipeline_class: type
    family: str
    """``sd``, ``sdxl``, ``sd3``, ``flux`` or ``other``."""
    call_params: dict[str, inspect.Parameter]
    """The parameters of the pipeline class's ``__call__``."""
    vae_scale_factor: int
    native_base: int
    """Side of the square the pipeline renders by default (sample size x VAE factor)."""
    multiple: int
    """Native width and height must be multiples of this (latent packing or patching)."""
    max_side: int | None
    """Longest side the model can render at all (SD3's position-embedding table), if bounded."""
    guidance_embeds: bool | None
    """Flux only: whether the transformer takes a guidance input (dev does, schnell does not)."""

    def native_size(self, ratio: float) -> tuple[int, int]:
        """The size the model renders for ``ratio``: its native area, snapped to ``multiple``."""
        from imagehub.catalog.sizes import size_for_base

        width, height = size_for_base(self.native_base, ratio, multiple=self.multiple)
        if self.max_side is not None and max(width, height) > self.max_side:
            base = self.native_base * self.max_side / max(width, height)
            width, height = size_for_base(int(base), ratio, multiple=self.multiple)
            while max(width, height) > self.max_side and base > self.multiple:  # rounding up
                base -= self.multiple
                width, height = size_for_base(int(base), ratio, multiple=self.multiple)
        return width, height


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """``hf:org/name@rev`` -> (``org/name``, ``rev``)."""
    repo = source[len(HF_PREFIX) :]
    repo_id, _, revision = repo.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ModelUnavailable(f"source {source!r} is not of the form hf:org/name[@revision]")
    return repo_id, revision or None


def resolve_source(
    source: str,
    *,
    allow_downloads: bool = False,
    cache_dir: str | Path | None = None,
    weights: bool = False,
) -> Path:
    """The local folder holding ``source``; raises ModelUnavailable saying what is missing.

    With ``allow_downloads``, an ``hf:`` source missing from the cache is fetched: config files
    only, unless ``weights`` (then the whole pipeline, through ``DiffusionPipeline.download``,
    which skips the files the pipeline does not use).
    """
    if not source.startswith(HF_PREFIX):
        folder = Path(source).expanduser()
        _check_folder(folder)
        return folder
    repo_id, revision = parse_hf_source(source)
    # With downloads allowed, weights go through the hub first: an earlier config-only fetch
    # leaves a cached snapshot that has no weights.
    online_first = allow_downloads and weights
    try:
        folder = _hf_snapshot(
            repo_id, revision, cache_dir, local_only=not online_first, weights=weights
        )
    except ModelUnavailable:
        if not allow_downloads:
            raise
        folder = _hf_snapshot(
            repo_id, revision, cache_dir, local_only=online_first, weights=weights
        )
    _check_folder(folder)
    return folder


def _hf_snapshot(
    repo_id: str,
    revision: str | None,
    cache_dir: str | Path | None,
    *,
    local_only: bool,
    weights: bool,
) -> Path:
    from huggingface_hub import snapshot_download

    source = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    try:
        if local_only:
            path = snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
            )
        elif weights:
            from diffusers import DiffusionPipeline

            path = DiffusionPipeline.download(repo_id, revision=revision, cache_dir=cache_dir)
        else:
            path = snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=CONFIG_PATTERNS
            )
    except Exception as exc:  # huggingface_hub raises several unrelated types for "not there"
        if local_only:
            raise ModelUnavailable(
                f"{source} is not in the local Hugging Face cache; download it "
                f"(hf download {repo_id}) or set allow_downloads"
            ) from exc
        raise ModelUnavailable(f"could not download {source}: {exc}") from exc
    return Path(path)


def _check_folder(folder: Path) -> None:
    if not (folder / "model_index.json").is_file():
        reason = "model_index.json missing" if folder.is_dir() else "no such folder"
        raise ModelUnavailable(f"no diffusers folder at {folder} ({reason})")


# ---------------------------------------------------------------------------------------------
# Reading the folder
# ---------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{path} is not a JSON object")
    return data


def components(index: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The ``name -> (library, class)`` entries of a model index, optional (null) ones left out."""
    found = {}
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        if value[0] is not None and value[1] is not None:
            found[name] = (value[0], value[1])
    return found


def pipeline_class(index: dict[str, Any], folder: Path) -> type:
    """The diffusers class named by ``_class_name``; ModelUnavailable if diffusers lacks it."""
    name = index.get("_class_name")
    if not isinstance(name, str):
        raise ModelUnavailable(f"{folder}/model_index.json names no pipeline class (_class_name)")
    try:
        import diffusers
    except ImportError as exc:
        raise ModelUnavailable(
            "the diffusers engine needs torch and diffusers: pip install 'imagehub[diffusers]'"
        ) from exc
    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type):
        raise ModelUnavailable(
            f"pipeline class {name} (from {folder}/model_index.json) is not in diffusers "
            f"{diffusers.__version__}; upgrade diffusers"
        )
    return cls


def read_layout(folder: Path) -> Layout:
    """Everything the engine needs before loading, from ``folder``'s JSON files alone."""
    index = read_json(folder / "model_index.json")
    cls = pipeline_class(index, folder)
    parts = components(index)
    missing = sorted(name for name in parts if not (folder / name).is_dir())
    if missing:
        raise ModelUnavailable(f"{folder} lacks the component folders {', '.join(missing)}")
    call_params = dict(inspect.signature(cls.__call__).parameters)
    absent = [p for p in _REQUIRED_CALL_PARAMS if p not in call_params]
    if absent:
        raise ModelUnavailable(
            f"{cls.__name__} is not a text-to-image pipeline imagehub can drive "
            f"(its __call__ lacks {', '.join(absent)})"
        )

    vae = _component_config(folder, "vae")
    blocks = vae.get("block_out_channels") or [0] * 4
    scale = 2 ** (len(blocks) - 1)
    denoiser = _component_config(folder, "unet") or _component_config(folder, "transformer")
    sample = denoiser.get("sample_size") or 128  # the pipelines' own fallback (Flux: always 128)
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    patch = int(denoiser.get("patch_size") or 1)
    max_embed = denoiser.get("pos_embed_max_size")
    family = _FAMILIES.get(cls.__name__, "other")
    return Layout(
        folder=folder,
        pipeline_class=cls,
        family=family,
        call_params=call_params,
        vae_scale_factor=scale,
        native_base=int(sample) * scale,
        multiple=max(16, scale * max(2, patch)),
        max_side=int(max_embed) * patch * scale if max_embed else None,
        guidance_embeds=bool(denoiser.get("guidance_embeds")) if family == "flux" else None,
    )


def _component_config(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name / "config.json"
    return read_json(path) if path.is_file() else {}


def fingerprint_folder(folder: Path) -> str:
    """sha256 (16 hex) of what identifies the model, without reading the big weights.

    Hashed in sorted order, by path relative to ``folder`` (so a copy on another machine, or the
    same files in the Hugging Face cache, hash the same): ``model_index.json`` and every file in
    each component's folder: small files (configs, index JSON, tokenizer files) whole; a big file
    (weights) by its size and its first and last MiB, enough to tell two fine-tunes of the same
    architecture apart. A config-only download, whose weights are not there yet, hashes differently
    from the complete folder.
    """
    digest = hashlib.sha256()
    digest.update(b"model_index.json\0" + (folder / "model_index.json").read_bytes())
    for name in sorted(components(read_json(folder / "model_index.json"))):
        for path in sorted(p for p in (folder / name).rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(_file_identity(path))
    return digest.hexdigest()[:16]


def _file_identity(path: Path) -> bytes:
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= 2 * _SAMPLE:
            return f.read()
        head = f.read(_SAMPLE)
        f.seek(-_SAMPLE, 2)
        return b"size=%d\0" % size + hashlib.sha256(head + f.read(_SAMPLE)).digest()


# ---------------------------------------------------------------------------------------------
# Device, dtype, loading
# ---------------------------------------------------------------------------------------------


def default_device() -> str:
    """cuda if available, else mps, else cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str | None, device: str) -> torch.dtype:
    """``bf16``/``fp16``/``fp32`` (or torch's names); by default bf16 on CUDA (fp16 where the card
    lacks bf16), fp16 on mps, fp32 on cpu."""
    import torch

    if name is None:
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.startswith("mps") else torch.float32
    key = _DTYPES.get(name.lower())
    if key is None:
        raise ValueError(f"dtype must be one of bf16, fp16, fp32, not {name!r}")
    return getattr(torch, key)


def load_pipeline(folder: Path, device: str, dtype: torch.dtype) -> DiffusionPipeline:
    """Load the pipeline in ``folder`` (local files only), on ``device`` in ``dtype``, quiet."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(
        str(folder), local_files_only=True, **{_dtype_kwarg(): dtype}
    )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_kwarg() -> str:
    # diffusers renamed torch_dtype to dtype (and warns about the old name); older ones only
    # know torch_dtype.
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def nearest_resolution(base: int, bases: dict[str, int]) -> str:
    """The resolution name whose base is closest to ``base`` in log space."""
    return min(bases, key=lambda name: abs(math.log(bases[name] / base)))
