"""Where a diffusers model lives, what its config files say, and how its pipeline is loaded.

A source is a local diffusers folder (one with ``model_index.json``) or ``hf:org/name[@revision]``,
looked up in the local Hugging Face cache. Nothing is downloaded unless the caller allows it.

:func:`read_layout` answers every question asked before the weights are loaded (pipeline class,
native size, family) from the small JSON files alone, so the catalog can publish a schema and a
fingerprint for a model it has not loaded.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub.errors import ModelFilesUnreadable, ModelUnavailable

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline


class _NoTorchvisionNotice(logging.Filter):
    """transformers warns, for each image-processor class diffusers' pipelines import, that it
    falls back to the PIL one because torchvision is not installed: two lines on every CLI command
    and server start that bind a diffusers model, about a package imagehub does not need."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())

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
    "FluxKontextPipeline": "flux",  # an edit pipeline: Flux with the input image in context
}
_TEXT_TO_IMAGE_OF = {
    "StableDiffusionImg2ImgPipeline": "StableDiffusionPipeline",
    "StableDiffusionXLImg2ImgPipeline": "StableDiffusionXLPipeline",
}
"""A checkpoint saved as an image-to-image pipeline holds the same components as its text-to-image
one: it is loaded as that (and edits through image-to-image, as every SD/SDXL model does)."""
_SAMPLE = 1 << 20  # bytes read from each end of a weight file for the fingerprint
_REQUIRED_CALL_PARAMS = ("prompt", "height", "width", "generator", "callback_on_step_end")


@dataclass(frozen=True)
class Layout:
    """What a diffusers folder's JSON files say about the model, read without loading weights."""

    folder: Path
    pipeline_name: str
    """The diffusers class the folder is loaded as (an image-to-image checkpoint's text-to-image
    class)."""
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

    @property
    def edits(self) -> bool:
        """Whether the pipeline itself takes an input image (an edit model such as Flux Kontext),
        rather than text alone."""
        return "image" in self.call_params

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


def family_of(pipeline_class: str) -> str:
    """``sd``, ``sdxl``, ``sd3``, ``flux``, or ``other`` for a pipeline class's name."""
    return _FAMILIES.get(_TEXT_TO_IMAGE_OF.get(pipeline_class, pipeline_class), "other")


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
                f"(hf download {repo_id}) or set IMAGEHUB_ALLOW_HUB_DOWNLOADS=true (the cache is "
                f"HF_HOME's, or the card's cache_dir)"
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
    cls = getattr(diffusers, _TEXT_TO_IMAGE_OF.get(name, name), None)
    if not isinstance(cls, type):
        raise ModelUnavailable(
            f"pipeline class {name} (from {folder}/model_index.json) is not in diffusers "
            f"{diffusers.__version__}; upgrade diffusers"
        )
    return cls


log = logging.getLogger(__name__)

SIGNATURE_CACHE: Path | None = None
"""Where the parameters of pipeline classes' ``__call__`` are kept between processes, per diffusers
version (``Settings.cache_dir``, set where settings are loaded: ``registry.create_engine``, the
CLI's ``models`` commands); None: not kept. Reading them means importing the pipeline's module,
torch and diffusers with it: 7-14 s on this project's 2-core CPU, at every server start with a
local model card and every ``models add``, before any model is loaded."""


def call_parameters(index: dict[str, Any], folder: Path) -> tuple[str, dict[str, inspect.Parameter]]:
    """The class ``index`` names (as loaded: an image-to-image checkpoint's text-to-image one) and
    the parameters of its ``__call__``: from the cache of this diffusers version where they are
    kept, else from the class itself (then kept)."""
    name = index.get("_class_name")
    if isinstance(name, str):
        name = _TEXT_TO_IMAGE_OF.get(name, name)
        kept = _cached_signatures().get(name)
        try:
            if kept is not None:
                return name, {p["name"]: _parameter(p) for p in kept}
        except (KeyError, AttributeError, TypeError, ValueError):
            pass  # a damaged entry: read from the class again
    cls = pipeline_class(index, folder)
    params = dict(inspect.signature(cls.__call__).parameters)
    _keep_signature(name, params)  # under the name looked up (a diffusers alias included)
    return name, params


def _signature_file() -> Path | None:
    if SIGNATURE_CACHE is None:
        return None
    try:
        from importlib.metadata import version

        return SIGNATURE_CACHE / f"diffusers-{version('diffusers')}-call-parameters.json"
    except Exception:  # noqa: BLE001 - no diffusers installed: nothing to keep
        return None


def _cached_signatures() -> dict[str, list[dict[str, Any]]]:
    path = _signature_file()
    if path is None:
        return {}
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):  # not there yet, or damaged: read from the classes again
        return {}
    return kept if isinstance(kept, dict) else {}


def _keep_signature(name: str, params: dict[str, inspect.Parameter]) -> None:
    """Add ``name``'s parameters to the cache file (written whole, then renamed: a reader never
    sees half of it; two writers at once may lose one's entry, read again next time). A default
    that is not plain JSON is not kept: it reads back as no default (the engine reads only the
    number defaults)."""
    path = _signature_file()
    if path is None:
        return
    entries = [{"name": p.name, "kind": p.kind.name}
               | ({"default": p.default} if _plain(p.default) else {}) for p in params.values()]
    kept = _cached_signatures() | {name: entries}
    written = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as out:
            written = out.name
            json.dump(kept, out)
        os.replace(written, path)
    except OSError as exc:  # a read-only home: read from the classes each time
        log.debug("could not keep pipeline signatures in %s: %s", path, exc)
        if written is not None:
            Path(written).unlink(missing_ok=True)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _parameter(entry: dict[str, Any]) -> inspect.Parameter:
    return inspect.Parameter(entry["name"], getattr(inspect.Parameter, entry["kind"]),
                             default=entry.get("default", inspect.Parameter.empty))


def read_layout(folder: Path) -> Layout:
    """Everything the engine needs before loading, from ``folder``'s JSON files alone;
    ModelUnavailable naming what is wrong (a config value of the wrong kind included)."""
    try:
        return _read_layout(folder)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelUnavailable(f"{folder}: a config file holds a value imagehub cannot read "
                               f"({type(exc).__name__}: {exc})") from exc


def _read_layout(folder: Path) -> Layout:
    index = read_json(folder / "model_index.json")
    name, call_params = call_parameters(index, folder)
    parts = components(index)
    missing = sorted(name for name in parts if not (folder / name).is_dir())
    if missing:
        raise ModelUnavailable(f"{folder} lacks the component folders {', '.join(missing)}")
    if _is_refiner(index, parts):
        raise ModelUnavailable(f"{folder} is an SDXL refiner (no first text encoder, or "
                               "requires_aesthetics_score): it only refines images, and is not "
                               "served; serve the SDXL base model")
    absent = [p for p in _REQUIRED_CALL_PARAMS if p not in call_params]
    if absent:
        raise ModelUnavailable(
            f"{name} is not a text-to-image pipeline imagehub can drive "
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
    family = family_of(name)
    return Layout(
        folder=folder,
        pipeline_name=name,
        family=family,
        call_params=call_params,
        vae_scale_factor=scale,
        native_base=int(sample) * scale,
        multiple=max(16, scale * max(2, patch)),
        max_side=int(max_embed) * patch * scale if max_embed else None,
        guidance_embeds=bool(denoiser.get("guidance_embeds")) if family == "flux" else None,
    )


def _is_refiner(index: dict[str, Any], parts: dict[str, tuple[str, str]]) -> bool:
    """An SDXL refiner: saved as image-to-image, without the first text encoder, or conditioned
    on an aesthetic score (time ids the text-to-image pipeline does not make)."""
    return index.get("_class_name") == "StableDiffusionXLImg2ImgPipeline" and (
        "text_encoder" not in parts or bool(index.get("requires_aesthetics_score")))


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


def placement_problem(device: str | None, dtype: str | None) -> str | None:
    """Why a card's ``device`` or ``dtype`` cannot work on this machine, or None. Asks torch
    nothing that starts CUDA (the server's process must not hold a CUDA context)."""
    import torch

    if dtype is not None and (not isinstance(dtype, str) or dtype.lower() not in _DTYPES):
        return f"dtype: {dtype!r} is not one of bf16, fp16, fp32"
    if device is None:
        return None
    kind = device.split(":")[0] if isinstance(device, str) else None
    if kind not in ("cuda", "mps", "cpu"):
        return f"device: {device!r} is not one of cuda, mps, cpu (or cuda:N)"
    if kind == "cuda" and not torch.backends.cuda.is_built():
        return f"device: {device!r}, but this torch is a CPU build (no CUDA)"
    if kind == "mps" and not torch.backends.mps.is_available():
        return f"device: {device!r}, but this machine has no MPS (Apple GPU)"
    return None


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
    cls = pipeline_class(read_json(folder / "model_index.json"), folder)  # text-to-image
    pipe = cls.from_pretrained(str(folder), local_files_only=True, **{_dtype_kwarg(): dtype})
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pin_execution_device(pipe)


def pin_execution_device(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """``pipe``, answering ``_execution_device`` with the device it is on now.

    diffusers reads that property once per call, and it walks every module of every component
    looking for offload hooks: 3 ms a call on the H100 host in the served profile (the GPU idle
    meanwhile), 5 ms for SD-Turbo's 1235 modules on this project's CPU. imagehub never offloads
    or moves a loaded pipeline, so the answer is fixed at load. The pipeline's class becomes a
    subclass of the same name, so diffusers' own class lookups (``from_pipe``) still match."""
    device = pipe._execution_device
    pipe.__class__ = _pinned_class(type(pipe))
    pipe.__dict__["_pinned_execution_device"] = device
    return pipe


@functools.cache
def _pinned_class(cls: type) -> type:
    if getattr(cls, "_imagehub_pinned", False):
        return cls
    return type(cls.__name__, (cls,), {
        "__module__": cls.__module__, "__qualname__": cls.__qualname__, "_imagehub_pinned": True,
        "_execution_device": property(lambda self: self.__dict__["_pinned_execution_device"]),
    })


@dataclass(frozen=True)
class SpeedOptions:
    """How a loaded pipeline is made fast; each is a card option (``models.toml``)."""

    channels_last: bool = False
    """UNet and VAE weights in channels-last memory order (faster convolutions on CUDA)."""
    fuse_qkv: bool = False
    """One matmul for each attention's query, key and value projections."""
    attention: str = "sdpa"
    """``sdpa``: torch's fused scaled-dot-product kernels (diffusers' default); ``eager``: the
    plain matmul-softmax processor (a baseline to measure SDPA against)."""
    compile: str = "off"
    """``off``, ``regional`` (torch.compile each repeated transformer block: compiles in seconds,
    most of the gain) or ``full`` (the whole denoiser). Warmed up at load, not at a request."""
    cuda_graphs: bool = False
    """With ``compile``: inductor's CUDA graphs (mode ``reduce-overhead``); shapes must repeat."""
    tiny_vae: str | None = None
    """A local AutoencoderTiny (TAESD) folder, or ``auto`` for ``madebyollin/taesd`` (``taesdxl``
    for SDXL) when it is in the local Hugging Face cache; else the model's own VAE stays."""
    max_batch_size: int = 1
    """Images one pipeline call takes at most (``IMAGEHUB_MAX_BATCH_SIZE`` unless the card sets
    its own); when compiling, the default warm-ups run up to it."""
    warmup_batches: tuple[int, ...] = ()
    """Batch sizes rendered once at load, so no request compiles. Default when compiling: the
    buckets."""
    batch_buckets: tuple[int, ...] = ()
    """Batch sizes (images per pipeline call) that a call is padded up to, so a compiled model
    only ever sees those shapes and replays its CUDA graphs instead of recording new ones.
    Default when compiling: the ``warmup_batches``, else ``batch_ladder(max_batch_size)``;
    eager: none. A call larger than the largest bucket runs unpadded."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_size, int) or isinstance(self.max_batch_size, bool) \
                or self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive whole number, "
                             f"not {self.max_batch_size!r}")
        for name in ("warmup_batches", "batch_buckets"):
            sizes = getattr(self, name)
            if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
                raise ValueError(f"{name} must be positive whole numbers, not {list(sizes)}")
        if self.compile not in ("off", "regional", "full"):
            raise ValueError(f"compile must be off, regional or full, not {self.compile!r}")
        if self.attention not in ("sdpa", "eager"):
            raise ValueError(f"attention must be sdpa or eager, not {self.attention!r}")

    @property
    def warmups(self) -> tuple[int, ...]:
        if self.warmup_batches or self.compile == "off":
            return tuple(self.warmup_batches)
        return self.buckets

    @property
    def buckets(self) -> tuple[int, ...]:
        if self.batch_buckets:
            return tuple(sorted(set(self.batch_buckets)))
        if self.compile == "off":
            return ()
        return tuple(sorted(set(self.warmup_batches or batch_ladder(self.max_batch_size))))

    def padded(self, images: int) -> int:
        """Images a pipeline call of ``images`` runs with: the smallest bucket that holds them."""
        return next((b for b in self.buckets if b >= images), images)


def batch_ladder(largest: int) -> tuple[int, ...]:
    """A compiled model's default batch sizes up to ``largest``: 1, 2, 4, 8, then each power of
    two and the point halfway to the next (12, 16, 24, 32, 48, 64…), and ``largest`` itself. A
    call padded up to the next of these runs at most 3 padding slots in 8 (5 → 8), and the
    warm-ups grow with the logarithm of the batch size (8 of them up to 32)."""
    sizes, n = [], 1
    while n < largest:
        sizes.append(n)
        if n >= 8 and n + n // 2 < largest:
            sizes.append(n + n // 2)
        n *= 2
    return (*sizes, largest)


_TINY_VAES = {"sd": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl", "sd3": "madebyollin/taesd3",
              "flux": "madebyollin/taef1"}


def apply_speed(pipe: DiffusionPipeline, options: SpeedOptions, family: str) -> list[str]:
    """Apply ``options`` to a loaded pipeline; returns what was applied (for provenance)."""
    import torch

    applied = []
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    # 1. Tiny VAE (decoder cost drops ~10x; pixels change, so it is opt-in)
    tiny = _tiny_vae_folder(options.tiny_vae, family)
    if tiny is not None:
        from diffusers import AutoencoderTiny

        vae = AutoencoderTiny.from_pretrained(str(tiny), local_files_only=True)
        pipe.vae = vae.to(device=pipe.device, dtype=pipe.dtype)
        applied.append(f"tiny_vae={tiny.name}")
    # 2. Attention kernels
    if options.attention == "eager" and denoiser is not None:
        from diffusers.models.attention_processor import AttnProcessor

        denoiser.set_attn_processor(AttnProcessor())
        applied.append("attention=eager")
    if options.fuse_qkv and hasattr(denoiser, "fuse_qkv_projections"):
        denoiser.fuse_qkv_projections()
        applied.append("fuse_qkv")
    # 3. Memory order
    if options.channels_last:
        for module in (denoiser, getattr(pipe, "vae", None)):
            if module is not None:
                module.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    # 4. Compilation
    mode = "reduce-overhead" if options.cuda_graphs else None
    if options.compile == "regional" and denoiser is not None:
        denoiser.compile_repeated_blocks(fullgraph=True, mode=mode)
        applied.append("compile=regional")
    elif options.compile == "full" and denoiser is not None:
        denoiser.compile(fullgraph=True, mode=mode)
        applied.append("compile=full")
    if options.cuda_graphs and options.compile != "off":
        applied.append("cuda_graphs")
    return applied


def _tiny_vae_folder(option: str | None, family: str) -> Path | None:
    if not option:
        return None
    if option != "auto":
        folder = Path(option).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"tiny_vae: no AutoencoderTiny folder at {folder}")
        return folder
    repo = _TINY_VAES.get(family)
    if repo is None:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache: the model's own VAE stays
        return None


def weights_bytes(folder: Path, dtype: torch.dtype) -> int:
    """Bytes the pipeline's weights take once loaded in ``dtype``, from the safetensors headers
    (floating tensors count at ``dtype``'s size, others as stored); 0 when there are none."""
    import struct

    item = dtype.itemsize
    total = 0
    for name in components(read_json(folder / "model_index.json")):
        for path in (folder / name).glob("*.safetensors"):
            try:
                total += _safetensors_bytes(path, item)
            except (OSError, ValueError, TypeError, KeyError, AttributeError,
                    struct.error, MemoryError) as exc:
                raise ModelFilesUnreadable(f"{path} is not a readable safetensors file "
                                           f"({type(exc).__name__}: {exc})") from exc
    return total


def _safetensors_bytes(path: Path, item: int) -> int:
    import struct

    total = 0
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > path.stat().st_size - 8:
            raise ValueError(f"its header claims {length} bytes, more than the file holds")
        header = json.loads(f.read(length))
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        numel = math.prod(entry["shape"])
        stored = _SAFETENSORS_SIZES.get(entry["dtype"], 4)
        total += numel * (item if entry["dtype"] in _FLOATS else stored)
    return total


_SAFETENSORS_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                      "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_FLOATS = {"F64", "F32", "F16", "BF16"}


def loaded_bytes(pipe: DiffusionPipeline) -> int:
    """Bytes of every parameter and buffer of the pipeline's torch modules."""
    import torch

    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            tensors = [*component.parameters(), *component.buffers()]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total


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
