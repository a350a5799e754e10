"""DiffusersEngine: a local diffusers pipeline (SD, SDXL, SD3, Flux) behind the engine contract."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub.catalog.sizes import ASPECT_RATIOS, RESOLUTION_BASES
from imagehub.engines.base import EngineRequest, EngineResult, StepCallback, no_progress
from imagehub.engines.diffusers import loading
from imagehub.engines.diffusers.loading import Layout
from imagehub.engines.diffusers.residency import RESIDENCY
from imagehub.engines.process import STOP_SECONDS, EngineProcess, ImagePixels
from imagehub.engines.thread import EngineThread
from imagehub.errors import (
    GenerationFailed,
    ImagehubError,
    InvalidParams,
    ModelFilesUnreadable,
    ModelUnavailable,
    clip,
)

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_STEPS = 150
MAX_GUIDANCE = 30.0

IMAGE_TO_IMAGE_FAMILIES = ("sd", "sdxl")
"""Families whose components also drive diffusers' image-to-image pipeline (``input_image``)."""
DEFAULT_STRENGTH = 0.8

# (num_inference_steps, guidance_scale) per family; the signature's defaults (often 50 steps)
# are slower than these models need.
FAMILY_DEFAULTS: dict[str, tuple[int, float]] = {
    "sd": (30, 7.5),
    "sdxl": (30, 5.0),
    "sd3": (28, 7.0),
    "flux": (28, 3.5),
    "flux-schnell": (4, 0.0),
    "turbo": (1, 0.0),  # SD-Turbo / SDXL-Turbo: one step, no classifier-free guidance
    "sd3-turbo": (4, 0.0),  # SD3.5 Large Turbo
}


class DiffusersEngine:
    """A diffusers pipeline from a local folder or the local Hugging Face cache.

    ``source`` is a folder holding ``model_index.json`` or ``hf:org/name[@revision]``. Nothing is
    downloaded unless ``allow_downloads``. The request schema is read from the pipeline class's
    ``__call__`` and the config files, so it is known before the weights are loaded. Generation
    runs at the model's native size for the asked ratio, then scales to the asked size.
    """

    backend = "diffusers"

    def __init__(
        self,
        source: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        allow_downloads: bool = False,
        cache_dir: str | Path | None = None,
        channels_last: bool = False,
        fuse_qkv: bool = False,
        attention: str = "sdpa",
        compile: str | bool = "off",
        cuda_graphs: bool = False,
        tiny_vae: str | None = None,
        max_batch_size: int | None = None,
        warmup_batches: list[int] | tuple[int, ...] = (),
        batch_buckets: list[int] | tuple[int, ...] = (),
        pinned: bool = False,
        process: bool | str = "auto",
        replicas: int = 1,
    ) -> None:
        self.source = source
        self.allow_downloads = allow_downloads
        self.cache_dir = cache_dir
        self._device = device
        self._dtype = dtype
        if isinstance(compile, bool):
            compile = "regional" if compile else "off"
        self.speed = loading.SpeedOptions(
            channels_last=channels_last, fuse_qkv=fuse_qkv, attention=attention, compile=compile,
            cuda_graphs=cuda_graphs, tiny_vae=tiny_vae,
            max_batch_size=1 if max_batch_size is None else max_batch_size,
            warmup_batches=tuple(warmup_batches), batch_buckets=tuple(batch_buckets),
        )
        self.max_batch_size = max_batch_size
        """Images one call of this model takes at most; None: the server's ``MAX_BATCH_SIZE``."""
        if process not in (True, False, "auto"):
            raise ValueError(f"process must be true, false or \"auto\", not {process!r}")
        self.process = process
        """Run the pipeline in a child process of its own (``engines.process``); ``auto``: on an
        accelerator (cuda, mps), where its kernel launches must not wait for the server's GIL."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be a whole number of at least 1, not {replicas!r}")
        if replicas > 1 and process is False:
            raise ValueError(f"replicas = {replicas} needs a process per copy: process = true "
                             "or \"auto\", not false")
        self.replicas = replicas
        """Copies of the model, each in a process of its own, each taking a call at once: while
        one copy's host runs its share of a call (the pipeline's Python, launches, copies), the
        device runs another copy's. Each copy holds the weights and a CUDA context of its own."""
        self._copies: list[_Copy] = []  # replaced whole, never changed in place
        self._applied: list[str] = []
        self.pinned = pinned
        """A pinned model is never unloaded to make room (``IMAGEHUB_PRELOAD_MODELS`` pins)."""
        self._layout: Layout | None = None
        self._pipe: DiffusionPipeline | None = None
        self._fingerprint: str | None = None
        self._damaged: tuple[str, str] | None = None  # (fingerprint, why) of files that failed
        self._img2img: tuple[Any, Any] | None = None  # (the pipeline it shares, the img2img one)
        self.max_images: int | None = None
        """Images per pipeline call that fit the device, once a bigger call ran out of memory."""
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # a pipeline keeps per-call state: one run at a time
        self.thread = EngineThread(f"imagehub-engine:{Path(source).name or source}")
        """Where this model is loaded, warmed up and run, whoever calls (``engines.thread``)."""

    # -- before loading ------------------------------------------------------------------------

    def layout(self) -> Layout:
        """The model's layout from its config files (cached once found; raises ModelUnavailable)."""
        if self._layout is None:
            folder = loading.resolve_source(
                self.source, allow_downloads=self.allow_downloads, cache_dir=self.cache_dir
            )
            self._layout = loading.read_layout(folder)
        return self._layout

    def availability(self) -> str | None:
        problem = loading.placement_problem(self._device, self._dtype)
        if problem is not None:
            return problem
        try:
            self.layout()
        except ModelUnavailable as exc:
            return exc.detail
        return None

    def check_params(self, resolved: dict[str, Any]) -> None:
        """Image-to-image's strength x steps must leave a denoising step (``ChecksParams``)."""
        props = self.schema_properties()
        if not resolved.get("input_image") or "strength" not in props or self.layout().edits:
            return
        strength = resolved.get("strength")
        steps = resolved.get("num_inference_steps") or props["num_inference_steps"]["default"]
        _check_denoising_steps(DEFAULT_STRENGTH if strength is None else float(strength), steps)

    def fingerprint(self) -> str:
        """16 hex of sha256 over the model's files (see ``loading.fingerprint_folder``); raises
        ModelUnavailable if the model is missing. While loaded: the loaded files' (hashed once)."""
        if self.loaded and self._fingerprint is not None:
            return self._fingerprint
        return loading.fingerprint_folder(self.layout().folder)

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        """The fields this model takes; only size and seed while the model files are missing."""
        try:
            layout = self.layout()
        except ModelUnavailable:
            return _size_properties("1K") | _seed_property(order=6)
        takes_image = layout.edits or layout.family in IMAGE_TO_IMAGE_FAMILIES
        props = _size_properties(loading.nearest_resolution(layout.native_base, RESOLUTION_BASES),
                                 takes_image=takes_image)
        steps, guidance = self._defaults(layout)
        if _takes_negative_prompt(layout):
            props["negative_prompt"] = {
                "type": "string",
                "description": "What the image should not contain.",
                "x-order": 3,
            }
        props["num_inference_steps"] = {
            "type": "integer",
            "description": "Denoising steps: more is slower and usually finer.",
            "default": steps,
            "minimum": 1,
            "maximum": MAX_STEPS,
            "x-order": 4,
        }
        if _takes_guidance(layout):
            props["guidance_scale"] = {
                "type": "number",
                "description": "How closely to follow the prompt (classifier-free guidance).",
                "default": guidance,
                "minimum": 0,
                "maximum": MAX_GUIDANCE,
                "x-order": 5,
            }
        if layout.edits:
            props |= _edit_properties(with_strength="strength" in layout.call_params)
        elif layout.family in IMAGE_TO_IMAGE_FAMILIES:
            props |= _image_to_image_properties()
        return props | _seed_property(order=6)

    def _defaults(self, layout: Layout) -> tuple[int, float]:
        family = layout.family
        turbo = "turbo" in self.source.lower()  # distilled: the name is all the folder says
        if family in ("sd", "sdxl") and turbo:
            family = "turbo"
        elif family == "sd3" and turbo:
            family = "sd3-turbo"
        elif family == "flux" and not layout.guidance_embeds:
            family = "flux-schnell"
        if family in FAMILY_DEFAULTS:
            return FAMILY_DEFAULTS[family]
        steps = layout.call_params.get("num_inference_steps")
        guidance = layout.call_params.get("guidance_scale")
        return (
            _number(steps.default if steps else None, 30),
            float(_number(guidance.default if guidance else None, 7.5)),
        )

    # -- loading -------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = loading.default_device()
        return self._device

    @property
    def pipeline(self) -> DiffusionPipeline:
        """The loaded diffusers pipeline (loading it first if needed); for benchmarks and tools."""
        if self.separate_process:
            raise RuntimeError(f"{self.source} runs in a process of its own (process = false "
                               "to reach its pipeline here)")
        self.load()
        assert self._pipe is not None
        return self._pipe

    @property
    def separate_process(self) -> bool:
        """Whether the pipeline runs in a child process (see ``process``; always with
        ``replicas``)."""
        if self.replicas > 1:
            return True
        if self.process == "auto":
            return self.device.split(":")[0] in ("cuda", "mps")
        return bool(self.process)

    def load(self) -> None:
        """Load the pipeline once (thread-safe), on the device, progress bars off; on the
        model's own thread, so that its warm-up (compiles, CUDA graphs) is that thread's too;
        in a child process when ``separate_process``."""
        if self.loaded:
            return
        if self.separate_process:
            self._load_in_child()
        else:
            self.thread.call(self._load)

    def _load_in_child(self) -> None:
        with self._load_lock:
            if self._copies:
                return
            import torch

            folder = loading.resolve_source(self.source, allow_downloads=self.allow_downloads,
                                            cache_dir=self.cache_dir, weights=True)
            # the default dtype's size without asking the device (a CUDA query here would give
            # this process a CUDA context of its own): bf16 and fp16 are both 2 bytes
            dtype = (torch.float16 if self._dtype is None and self.device != "cpu"
                     else loading.resolve_dtype(self._dtype, self.device))
            with self._failing_fast_while_damaged(folder):
                RESIDENCY.make_room(self, loading.weights_bytes(folder, dtype) * self.replicas)
                copies = self._copies_loaded(self.replicas)
            self._copies = copies  # one assignment: a caller sees every copy or none
            RESIDENCY.loaded(self, sum(copy.size for copy in copies))

    def _copies_loaded(self, count: int) -> list[_Copy]:
        """``count`` child processes with this model loaded in each (``load_in_this_process``);
        they load and warm up at once, and when one fails the others are ended at once."""
        import torch

        name = f"imagehub-engine:{Path(self.source).name or self.source}"
        threads = max(1, torch.get_num_threads() // self.replicas)
        processes: list[EngineProcess] = []
        try:
            for _ in range(count):
                processes.append(EngineProcess(name, f"{__name__}:DiffusersEngine", (self.source,),
                                               self._child_options(), torch_threads=threads))
            with ThreadPoolExecutor(count) as pool:
                calls = [pool.submit(process.call, "load_in_this_process") for process in processes]
                for call in as_completed(calls):
                    if call.exception() is not None:
                        _stop_all(processes, timeout=0)  # the others' loads end now
                        call.result()
                loaded = [call.result() for call in calls]
        except GenerationFailed as exc:  # a process died loading it: not servable now (503)
            _stop_all(processes)
            raise ModelUnavailable(f"{self.source} could not be loaded: {exc}") from exc
        except BaseException:
            _stop_all(processes)
            raise
        _, self._applied, self._fingerprint = loaded[0]
        return [_Copy(process, size) for process, (size, _, _) in zip(processes, loaded, strict=True)]

    def _child_options(self) -> dict[str, Any]:
        """This engine's options for its copy in the child (which runs in-process there); the
        speed options' fields are the constructor's argument names."""
        return {**asdict(self.speed), "device": self.device, "dtype": self._dtype,
                "allow_downloads": self.allow_downloads, "cache_dir": self.cache_dir,
                "process": False}

    def load_in_this_process(self) -> tuple[int, list[str], str | None]:
        """Load here (the child's side of ``_load_in_child``): bytes loaded, speed options
        applied, fingerprint."""
        self.load()
        assert self._pipe is not None
        return loading.loaded_bytes(self._pipe), self._applied, self._fingerprint

    def _load(self) -> None:
        with self._load_lock:
            if self._pipe is not None:
                return
            folder = loading.resolve_source(
                self.source,
                allow_downloads=self.allow_downloads,
                cache_dir=self.cache_dir,
                weights=True,
            )
            dtype = loading.resolve_dtype(self._dtype, self.device)
            self._fingerprint = loading.fingerprint_folder(folder)
            with self._failing_fast_while_damaged(folder):
                RESIDENCY.make_room(self, loading.weights_bytes(folder, dtype))
                pipe = self._load_pipeline(folder, dtype)
            self._applied = loading.apply_speed(pipe, self.speed, self.layout().family)
            self._pipe = pipe
            RESIDENCY.loaded(self, loading.loaded_bytes(pipe))
            self._warm_up()
            self._warn_of_unwarmed_calls()

    def _load_pipeline(self, folder: Path, dtype: Any) -> Any:
        """diffusers' pipeline from ``folder``; a file it cannot read (damaged or cut-short
        weights, a config it refuses) or a device without room makes the model unavailable
        (503, saying why), not an internal error."""
        try:
            return loading.load_pipeline(folder, self.device, dtype)
        except ImagehubError:
            raise
        except Exception as exc:
            log.warning("%s could not be loaded: %s: %s", self.source, type(exc).__name__, exc)
            unavailable = ModelUnavailable if "out of memory" in str(exc).lower() \
                else ModelFilesUnreadable  # memory may free up; damaged files stay damaged
            raise unavailable(f"{self.source} could not be loaded "
                              f"({type(exc).__name__}: {clip(str(exc), 300)})") from exc

    @contextmanager
    def _failing_fast_while_damaged(self, folder: Path) -> Iterator[None]:
        """A model whose files could not be read fails again at once until they change (their
        fingerprint): each request for it would otherwise evict loaded models to make room, then
        fail to load the same files."""
        fingerprint = loading.fingerprint_folder(folder)
        if self._damaged is not None and self._damaged[0] == fingerprint:
            raise ModelFilesUnreadable(self._damaged[1])
        try:
            yield
        except ModelFilesUnreadable as exc:
            self._damaged = (fingerprint, exc.detail)
            raise
        self._damaged = None

    def _image_to_image(self) -> Any:
        """diffusers' image-to-image pipeline over the loaded components (no second copy)."""
        pipe = self.pipeline
        cached = self._img2img
        if cached is None or cached[0] is not pipe:
            from diffusers import AutoPipelineForImage2Image

            img2img = loading.pin_execution_device(AutoPipelineForImage2Image.from_pipe(pipe))
            img2img.set_progress_bar_config(disable=True)
            cached = self._img2img = (pipe, img2img)
        return cached[1]

    @property
    def loaded(self) -> bool:
        return self._pipe is not None or bool(self._copies)

    def unload(self) -> None:
        """Drop the pipeline and give its memory back (the next request loads it again); a
        child process ends, and its memory goes back to the OS and the device whole."""
        with self._run_lock:
            self._pipe = self._img2img = None
            copies, self._copies = self._copies, []
        RESIDENCY.unloaded(self)
        if copies:
            _stop_all([copy.process for copy in copies])
        else:
            _free_device_memory(self.device)

    def close(self) -> None:
        """At shutdown: end the child process, if any."""
        if self._copies:
            self.unload()

    def _warm_up(self) -> None:
        """Render each warm-up batch size once at the native square size (compiles happen here)."""
        layout = self.layout()
        width, height = layout.native_size(1.0)
        for size in self.speed.warmups:
            requests = [EngineRequest(prompt="warm-up", width=width, height=height, seed=n,
                                      num_inference_steps=1) for n in range(size)]
            for outcome in self.generate_batch(requests, [no_progress] * size):
                if isinstance(outcome, Exception):
                    raise outcome

    def _warn_of_unwarmed_calls(self) -> None:
        largest = max(self.speed.buckets, default=0)
        if self.speed.compile != "off" and self.speed.max_batch_size > largest:
            sizes = "batch_buckets" if self.speed.batch_buckets else "warmup_batches"
            log.warning("%s: calls of %d to %d images will compile at the first request of each "
                        "size (the largest warm-up batch is %d): add %d to %s, or lower "
                        "max_batch_size", self.source, largest + 1, self.speed.max_batch_size,
                        largest, self.speed.max_batch_size, sizes)

    # -- generating ----------------------------------------------------------------------------

    def generate(self, request: EngineRequest, on_step: StepCallback) -> EngineResult:
        """One request: a batch of one (the same code path as a batch, so the same pixels)."""
        result = self.generate_batch([request], [on_step])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def generate_batch(
        self, requests: list[EngineRequest], on_steps: list[StepCallback]
    ) -> list[EngineResult | Exception]:
        """Compatible requests as one pipeline call each; every request keeps its own seeds,
        progress and cancel, and gets its own result or exception back (see ``BatchingEngine``)."""
        with RESIDENCY.in_use(self):  # not unloaded while it runs; the most recently used
            if self.separate_process:
                outcomes = self._generate_in_child(requests, on_steps)
            else:
                outcomes = self.thread.call(self._generate_batch, requests, on_steps)
        # off the engine's thread, and off the model's process when it has one
        return [self._finished(outcome) for outcome in outcomes]

    def generate_pixels(
        self, requests: list[EngineRequest], on_steps: list[StepCallback]
    ) -> list[EngineResult | _Pixels | Exception]:
        """The child's side of ``_generate_in_child``: a batch's outcomes with their 8-bit pixels,
        not yet images. The pixels cross to the server in one copy each, and the child's GIL
        stays with its device work: making the PIL images and then their bytes there took
        as long as the pipeline's own Python in the H100 profile of 2026-11-27."""
        with RESIDENCY.in_use(self):
            outcomes = self.thread.call(self._generate_batch, requests, on_steps)
        return [outcome.crossing() if isinstance(outcome, _Pixels) else outcome
                for outcome in outcomes]

    def _generate_in_child(
        self, requests: list[EngineRequest], on_steps: list[StepCallback]
    ) -> list[EngineResult | _Pixels | Exception]:
        copy = self._least_busy_copy()
        try:
            return copy.process.call("generate_pixels", requests, on_steps=on_steps)
        except GenerationFailed:
            if not copy.process.alive:
                self._drop(copy)
            raise
        finally:
            with self._run_lock:
                copy.calls -= 1

    def _least_busy_copy(self) -> _Copy:
        """The loaded copy with the fewest calls in flight (loading the model first if needed),
        counted as one more."""
        while True:
            self.load()
            with self._run_lock:
                if self._copies:  # else the last copy died since: load again
                    copy = min(self._copies, key=lambda c: c.calls)
                    copy.calls += 1
                    return copy

    def _drop(self, copy: _Copy) -> None:
        """A copy whose process died (killed, out of host memory): its calls fail; the other
        copies serve on while a new one loads in its place; with none left, the next request
        loads the model again."""
        with self._run_lock:
            if not any(c is copy for c in self._copies):
                return  # another of its calls dropped it
            survivors = self._copies = [c for c in self._copies if c is not copy]
        copy.process.stop()  # its pipe closed
        if not survivors:
            RESIDENCY.unloaded(self)
            return
        RESIDENCY.loaded(self, sum(c.size for c in survivors))
        log.warning("%s: a copy's process (pid %s) died; %d serving while another loads",
                    self.source, copy.process.pid, len(survivors))
        threading.Thread(target=self._replace_copy, args=(survivors,), daemon=True,
                         name=f"imagehub-replace:{Path(self.source).name}").start()

    def _replace_copy(self, survivors: list[_Copy]) -> None:
        """A new copy beside ``survivors``, kept if they are still the model's copies when it is
        ready (not if the model was unloaded, or lost another copy, meanwhile)."""
        try:
            [copy] = self._copies_loaded(1)
        except Exception as exc:  # noqa: BLE001 - logged; the survivors serve on
            log.warning("%s: a copy could not be loaded again (%s); %d serving", self.source,
                        exc, len(survivors))
            return
        with self._run_lock:
            kept = self._copies is survivors
            if kept:
                self._copies = [*survivors, copy]
                size = sum(c.size for c in self._copies)
        if kept:
            RESIDENCY.loaded(self, size)
        else:
            copy.process.stop()

    def _finished(self, outcome: EngineResult | _Pixels | Exception) -> EngineResult | Exception:
        """A request's 8-bit pixels as its result: PIL images, scaled to the asked size. Done on
        the caller's thread (in the server's process when the model has one of its own), so the
        engine's thread (and its device) can start the next batch meanwhile: 32 512² PIL images
        took 5-25 ms there on 2 CPU cores, and scaling each image to an asked size other than
        the native one costs more."""
        if not isinstance(outcome, _Pixels):
            return outcome
        result = self._result(outcome.plan, _pil_images(outcome.pixels))
        result.info.update(outcome.info)
        return result

    def _generate_batch(
        self, requests: list[EngineRequest], on_steps: list[StepCallback]
    ) -> list[EngineResult | _Pixels | Exception]:
        results: list[EngineResult | _Pixels | Exception | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, request in enumerate(requests):
            try:
                plan = self._plan(request)
            except Exception as exc:  # noqa: BLE001 - refused alone; the others still run
                results[i] = exc
                continue
            groups.setdefault(plan.signature, []).append(i)
        for indices in groups.values():
            for chunk in self._fitting(indices, requests):
                plans = [self._plan(requests[i]) for i in chunk]
                outcomes = self._run_group(plans, [on_steps[i] for i in chunk])
                for i, outcome in zip(chunk, outcomes, strict=True):
                    results[i] = outcome
        return [r for r in results if r is not None]

    def _fitting(self, indices: list[int], requests: list[EngineRequest]) -> list[list[int]]:
        """``indices`` in runs of at most ``max_images`` images (all at once while no call has
        run out of memory)."""
        if self.max_images is None:
            return [indices]
        chunks: list[list[int]] = [[]]
        for i in indices:
            images = sum(requests[j].num_images for j in chunks[-1])
            if chunks[-1] and images + requests[i].num_images > self.max_images:
                chunks.append([])
            chunks[-1].append(i)
        return chunks

    def _plan(self, request: EngineRequest) -> _Plan:
        """Check ``request`` and resolve what the pipeline is called with."""
        # 1. Check inputs
        if not 1 <= request.num_images <= MAX_IMAGES:
            raise InvalidParams(f"num_images must be 1 to {MAX_IMAGES}, not {request.num_images}")
        if request.width < 1 or request.height < 1:
            raise InvalidParams(
                f"width and height must be positive, not {request.width}x{request.height}"
            )
        layout = self.layout()
        if request.input_images and not (layout.edits or layout.family in IMAGE_TO_IMAGE_FAMILIES):
            raise InvalidParams(f"{self.source} is a text-to-image model; it takes no input_images")
        props = self.schema_properties()
        # 2. Native size for the asked ratio
        native_w, native_h = layout.native_size(request.width / request.height)
        # 3. Steps, guidance: only what this model's schema publishes
        steps = request.num_inference_steps or props["num_inference_steps"]["default"]
        guidance = None
        if "guidance_scale" in props:
            guidance = request.guidance_scale
            if guidance is None:
                guidance = props["guidance_scale"]["default"]
        negative = request.negative_prompt if "negative_prompt" in props else None
        plan = _Plan(request, native_w, native_h, steps, guidance, negative or None)
        if request.input_images and layout.edits:
            return _with_edit_image(plan)
        return _with_input_image(plan) if request.input_images else plan

    def _run_group(
        self, plans: list[_Plan], on_steps: list[StepCallback]
    ) -> list[EngineResult | _Pixels | Exception]:
        """Plans sharing a signature, as one pipeline call."""
        import torch

        first = plans[0]
        if first.mode == "identity":  # strength 0: the input image is the answer
            return [self._result(p, [p.image] * p.request.num_images) for p in plans]
        pipe = self._image_to_image() if first.mode == "image" else self.pipeline
        # 1. One prompt and one seeded generator per image, padded up to a batch bucket
        kwargs, owners, padded = self._call_arguments(plans)
        steps = _BatchSteps(on_steps, first.steps)
        kwargs["callback_on_step_end"] = steps.callback

        # 2. Denoise (a cancelled request is dropped from the results; if all are, the run stops),
        #    decode, and report the last step once the pixels are on the host
        try:
            with self._run_lock, torch.inference_mode():
                began = time.perf_counter()
                output = pipe(**kwargs)
                pixels = _to_uint8(output.images[:len(owners)])  # the padding dropped
                run_ms = round((time.perf_counter() - began) * 1000, 1)
        except Exception as exc:  # noqa: BLE001 - all cancelled, or the run itself failed
            if _out_of_memory(exc) and len(plans) > 1:
                return self._split(plans, on_steps, len(owners))
            return [steps.cancelled.get(n, exc) for n in range(len(plans))]
        steps.finish()
        flagged = list(getattr(output, "nsfw_content_detected", None) or [])
        arrays = pixels.numpy()

        # 3. Split the pixels back to their requests (made images by ``_finished``)
        results: list[EngineResult | _Pixels | Exception] = []
        for n, plan in enumerate(plans):
            mine = [i for i, owner in enumerate(owners) if owner == n]
            if n in steps.cancelled:
                results.append(steps.cancelled[n])
            elif any(flagged[i] for i in mine if i < len(flagged)):
                results.append(GenerationFailed("the model's safety checker blocked the image"))
            else:
                # run_ms: the batch's model run, its pixels on the host
                info: dict[str, Any] = {"batch_size": len(owners), "run_ms": run_ms}
                if padded > len(owners):
                    info["padded_to"] = padded
                results.append(_Pixels(plan, [arrays[i] for i in mine], info))
        return results

    def _split(self, plans: list[_Plan], on_steps: list[StepCallback],
               images: int) -> list[EngineResult | _Pixels | Exception]:
        """A call of ``images`` ran out of device memory: remember that half of it is the most to
        try from now on, and run each half (each request starts its steps again)."""
        self.max_images = max(1, min(self.max_images or images, images // 2))
        log.warning("%s ran out of device memory at %d images per call; calls are capped at %d "
                    "from now on (lower IMAGEHUB_MAX_BATCH_SIZE to match)",
                    self.source, images, self.max_images)
        _free_device_memory(self.device)
        half = len(plans) // 2
        return (self._run_group(plans[:half], on_steps[:half])
                + self._run_group(plans[half:], on_steps[half:]))

    def _call_arguments(self, plans: list[_Plan]) -> tuple[dict[str, Any], list[int], int]:
        """The pipeline's arguments for ``plans``: a prompt and a seeded generator per image,
        request after request, then copies of the first image's up to the batch bucket (static
        shapes for compiled CUDA graphs). Also which plan owns each real image, and the padded
        batch size."""
        import torch

        first = plans[0]
        owners = [n for n, plan in enumerate(plans) for _ in range(plan.request.num_images)]
        padding = self.speed.padded(len(owners)) - len(owners)
        slots = owners + [0] * padding
        seeds = [plan.request.seed + i for plan in plans for i in range(plan.request.num_images)]
        kwargs: dict[str, Any] = {
            "prompt": [plans[n].request.prompt for n in slots],
            "num_inference_steps": first.steps,
            "generator": [torch.Generator(device="cpu").manual_seed(seed)
                          for seed in seeds + seeds[:1] * padding],
            "output_type": "pt",  # made 8-bit on the device; PIL images made off the run lock
        }
        if first.mode in ("image", "edit"):  # the images come at the native size
            kwargs["image"] = [plans[n].image for n in slots]
        if first.strength is not None:
            kwargs["strength"] = first.strength
        if first.mode != "image":  # image-to-image takes its size from the image
            kwargs["width"], kwargs["height"] = first.width, first.height
        params = self.layout().call_params  # Flux Kontext would otherwise rescale to its own sizes
        if "max_area" in params:
            kwargs["max_area"] = first.width * first.height
        if first.mode == "edit" and "_auto_resize" in params:
            kwargs["_auto_resize"] = False
        if first.negative is not None:
            kwargs["negative_prompt"] = [plans[n].negative for n in slots]
        if first.guidance is not None:
            kwargs["guidance_scale"] = first.guidance
        return kwargs, owners, len(slots)

    def _result(self, plan: _Plan, images: list[Any]) -> EngineResult:
        size = (plan.request.width, plan.request.height)
        images = [_at_size(image, size) for image in images]
        info: dict[str, Any] = {
            "pipeline": self.layout().pipeline_name,
            "native_width": plan.width,
            "native_height": plan.height,
            "num_inference_steps": plan.steps,
        }
        if plan.guidance is not None:
            info["guidance_scale"] = plan.guidance
        if plan.strength is not None:
            info["strength"] = plan.strength
        if self._applied:
            info["speed"] = list(self._applied)
        return EngineResult(images=images, info=info)


@dataclass
class _Pixels:
    """A request's images as 8-bit H, W, C arrays, as its batch's run left them (PIL images
    once they have come from the model's process)."""

    plan: _Plan
    pixels: list[Any]
    info: dict[str, Any]

    def crossing(self) -> _Pixels:
        """Itself for the way to the server: without the request's input images, which the
        server has, and its pixels to arrive there as PIL images; scaled here first when the
        asked size is not the native one (Pillow lets go of the GIL while it scales, and the
        server's CPU is the one every request shares)."""
        request = replace(self.plan.request, input_images=[])
        size = (request.width, request.height)
        pixels: list[Any] = [
            ImagePixels(array) if array.shape[1::-1] == size
            else _at_size(_pil_images([array])[0], size) for array in self.pixels]
        return _Pixels(replace(self.plan, request=request, image=None), pixels, self.info)


@dataclass
class _Plan:
    """One request resolved to pipeline arguments; equal signatures run as one call."""

    request: EngineRequest
    width: int
    height: int
    steps: int
    guidance: float | None
    negative: str | None
    mode: str = "text"
    """``text`` (text-to-image), ``image`` (image-to-image), ``identity`` (strength 0) or
    ``edit`` (an edit pipeline, which takes the image itself)."""
    strength: float | None = None
    image: Any = None
    """The input image at the native size (``image`` and ``identity`` modes)."""

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.width, self.height, self.steps, self.guidance, self.negative is not None,
                self.mode, self.strength)


def _input_image(plan: _Plan) -> tuple[Any, float | None]:
    """The request's one input image (RGB) and its ``strength`` (None when not given), checked."""
    request = plan.request
    if len(request.input_images) != 1:
        raise InvalidParams(f"input_image: one image, not {len(request.input_images)}")
    strength = request.params.get("strength")
    if strength is not None and not 0 <= float(strength) <= 1:
        raise InvalidParams(f"strength must be 0 to 1, not {strength}")
    return request.input_images[0].convert("RGB"), None if strength is None else float(strength)


def _with_input_image(plan: _Plan) -> _Plan:
    """``plan`` for a request with an input image: strength 0 keeps the image, 1 ignores it."""
    image, strength = _input_image(plan)
    strength = DEFAULT_STRENGTH if strength is None else strength
    if strength >= 1:  # nothing of the input survives: text-to-image with the same seed
        return plan
    if strength == 0:  # straight to the asked size: no round trip through the native size
        image = image.resize((plan.request.width, plan.request.height), _lanczos())
        return replace(plan, mode="identity", strength=0.0, steps=0, image=image)
    image = image.resize((plan.width, plan.height), _lanczos())
    _check_denoising_steps(strength, plan.steps)
    return replace(plan, mode="image", strength=strength, image=image)


def _check_denoising_steps(strength: float, steps: int) -> None:
    """Image-to-image runs ``int(steps x strength)`` steps: InvalidParams when that is none."""
    if 0 < strength < 1 and int(steps * strength) < 1:
        raise InvalidParams(
            f"strength x num_inference_steps must be at least 1 denoising step, not "
            f"{strength} x {steps}: raise num_inference_steps or strength"
        )


def _with_edit_image(plan: _Plan) -> _Plan:
    """``plan`` for an edit pipeline: its one input image at the native size for the asked ratio."""
    image, strength = _input_image(plan)
    image = image.resize((plan.width, plan.height), _lanczos())
    return replace(plan, mode="edit", image=image, strength=strength)


class _BatchSteps:
    """A ``callback_on_step_end`` that reports each step to every live request of a batch.

    A request whose ``on_step`` raises GenerationCancelled leaves the batch: it gets no further
    progress and its images are dropped. Its latents still ride along to the end (removing rows
    mid-run would shift the other requests' scheduler noise), unless every request has left,
    which stops the run.

    The last step is held back until :meth:`finish`, once the images are decoded and their pixels
    are on the host: "step n of n" then means the device work is done, and that is where the
    service's hand-off (``ENGINE_HANDOFF``) lets the next batch go to the model. At the last
    denoising step itself, a 1-step model has only just been launched, and a batch handed off
    there left early and small (23-24 images a call against 28-30 on an H100).
    """

    def __init__(self, on_steps: list[StepCallback], steps: int) -> None:
        self.on_steps = on_steps
        self.steps = steps
        self.cancelled: dict[int, Exception] = {}
        self.last: tuple[int, int] = (steps, steps)

    def callback(self, pipe: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict:
        # Some schedulers run more timesteps than asked (Heun: 2n-1); the pipeline counts them.
        total = getattr(pipe, "num_timesteps", None) or self.steps
        if step_index + 1 >= total:
            self.last = (step_index + 1, total)  # reported by finish()
            return tensors
        self._report(step_index + 1, total)
        if len(self.cancelled) == len(self.on_steps):
            raise next(iter(self.cancelled.values()))
        return tensors

    def finish(self) -> None:
        """The last step, now that the run's pixels are on the host (a request cancelled by now
        still leaves: its images are dropped)."""
        self._report(*self.last)

    def _report(self, step: int, total: int) -> None:
        for n, on_step in enumerate(self.on_steps):
            if n in self.cancelled:
                continue
            try:
                on_step(step, total)
            except Exception as exc:  # noqa: BLE001 - cancelled, or progress not saved
                self.cancelled[n] = exc


@dataclass(eq=False)
class _Copy:
    """One copy of a model in its own process (``replicas``): the bytes it took, and its calls
    in flight (under the engine's ``_run_lock``)."""

    process: EngineProcess
    size: int
    calls: int = 0


def _stop_all(processes: list[EngineProcess], timeout: float = STOP_SECONDS) -> None:
    for process in processes:
        process.stop(timeout)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory (CUDA raises torch.OutOfMemoryError;
    MPS a RuntimeError saying so)."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _free_device_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _to_uint8(images: Any) -> Any:
    """Pipeline ``pt`` output (N, C, H, W in [0, 1]) as 8-bit N, H, W, C on the CPU, rounded in
    float32 exactly as diffusers' PIL output is (``numpy_to_pil``). Made contiguous on the device:
    PIL copies a strided array pixel by pixel (35 ms against 5 ms for 32 512² images, 2 cores)."""
    import torch

    return (images.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


def _pil_images(pixels: list[Any]) -> list[Any]:
    """8-bit arrays as PIL images (those from a model's process arrive as images)."""
    from PIL import Image

    return [p if isinstance(p, Image.Image) else Image.fromarray(p) for p in pixels]


def _at_size(image: Any, size: tuple[int, int]) -> Any:
    """``image`` scaled to ``size`` (LANCZOS), unless it is that size already."""
    return image if image.size == size else image.resize(size, resample=_lanczos())


def _lanczos() -> Any:
    from PIL import Image

    return Image.Resampling.LANCZOS


def _takes_negative_prompt(layout: Layout) -> bool:
    # Flux accepts negative_prompt but ignores it unless true_cfg_scale > 1 (which doubles the
    # cost); a field that changes nothing is not published.
    params = layout.call_params
    return "negative_prompt" in params and "true_cfg_scale" not in params


def _takes_guidance(layout: Layout) -> bool:
    # FLUX.1-schnell has no guidance input: the pipeline accepts the value and ignores it.
    return "guidance_scale" in layout.call_params and layout.guidance_embeds is not False


def _size_properties(default_resolution: str, *, takes_image: bool = False) -> dict[str, dict[str, Any]]:
    ratio: dict[str, Any] = {"type": "string", "description": "Width:height of the image.",
                             "enum": list(ASPECT_RATIOS), "default": "1:1", "x-order": 1}
    if takes_image:  # an edit keeps the input's shape unless asked otherwise
        ratio |= {"default": "auto", "description": "Width:height of the image; `auto` (the "
                  "default) is the input image's nearest listed ratio, 1:1 without one."}
    return {
        "aspect_ratio": ratio,
        "resolution": {
            "type": "string",
            "description": "Output size class; the model renders at its native size and is scaled.",
            "enum": list(RESOLUTION_BASES),
            "default": default_resolution,
            "x-order": 2,
        },
    }


def _image_to_image_properties() -> dict[str, dict[str, Any]]:
    return {
        "input_image": {
            "type": "string",
            "description": "An image to start from (https URL or data URI): image-to-image.",
            "x-order": 7,
        },
        "strength": {
            "type": "number",
            "description": "How much of input_image to change: 0 returns it, 1 ignores it.",
            "default": DEFAULT_STRENGTH,
            "minimum": 0,
            "maximum": 1,
            "x-order": 8,
        },
    }


def _edit_properties(*, with_strength: bool) -> dict[str, dict[str, Any]]:
    props = {
        "input_image": {
            "type": "string",
            "description": "The image to edit (https URL or data URI); the prompt says what to "
                           "change. Without it the model generates from the prompt alone.",
            "x-order": 7,
        },
    }
    if with_strength:
        props["strength"] = _image_to_image_properties()["strength"]
    return props


def _seed_property(order: int) -> dict[str, dict[str, Any]]:
    return {
        "seed": {
            "type": "integer",
            "description": "Random seed: the same seed and fields give the same image.",
            "minimum": 0,
            "maximum": 2**63 - 1,  # what torch.Generator.manual_seed and SQLite take
            "x-order": order,
        }
    }


def _number(value: Any, fallback: float) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback
