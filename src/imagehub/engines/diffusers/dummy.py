"""Random-weight diffusers pipelines built in code: tiny ones for tests, full-size ones for benchmarks.

Nothing here downloads anything, tokenizers included (diffusers' ``get_dummy_components`` habit):
the CLIP tokenizer is a byte-level BPE trained on :data:`CORPUS` with the ``tokenizers`` library,
the T5 tokenizer a Unigram model trained on the same corpus. Every builder writes a complete
diffusers folder with ``save_pretrained`` and returns its path, so tests load it through the real
loading code.

The tiny pipelines have a native base of 256 (the size the pipeline renders by default), so a 256²
render on a laptop CPU takes a fraction of a second.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

CORPUS: list[str] = [
    "a photo of a cat sitting on a red chair",
    "a watercolor painting of mountains at sunset, highly detailed",
    "portrait of an astronaut riding a horse on the moon, digital art",
    "a bowl of fruit on a wooden table, soft light, 35mm film",
    "an ox pulling a cart through a field of sunflowers",
    "low quality, blurry, deformed, watermark, text",
    "the quick brown fox jumps over the lazy dog 0123456789",
]
"""Text the tiny tokenizers are trained on (a few hundred tokens; enough for merges to appear)."""

FULL_SIZE_FAMILIES: tuple[str, ...] = ("sd15", "sd-turbo", "sdxl", "flux-schnell")

_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_CLIP_BOS, _CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


def tiny_clip_tokenizer(model_max_length: int = 77, merges: int = 300) -> CLIPTokenizer:
    """A CLIP tokenizer whose BPE merges are learned here from :data:`CORPUS`.

    Words are split exactly as ``CLIPTokenizer`` splits them (lowercase, CLIP's regex, byte level,
    ``</w>`` on the last symbol), then :func:`_learn_merges` learns the merges. Every byte is in the
    vocab both mid-word and word-final, so no prompt maps to the unknown token.
    """
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    words: Counter[tuple[str, ...]] = Counter()
    for line in CORPUS:
        for word, _ in split.pre_tokenize_str(" ".join(line.lower().split())):
            words[(*word[:-1], word[-1] + "</w>")] += 1
    learned = _learn_merges(words, merges)

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [_CLIP_BOS, _CLIP_EOS, *alphabet, *(char + "</w>" for char in alphabet)]
    tokens += [left + right for left, right in learned]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        lines = ["#version: 0.2", *(f"{left} {right}" for left, right in learned)]
        Path(tmp, "merges.txt").write_text("\n".join(lines) + "\n")
        return CLIPTokenizer.from_pretrained(tmp, local_files_only=True,
                                             model_max_length=model_max_length)


def _learn_merges(words: Counter[tuple[str, ...]], limit: int) -> list[tuple[str, str]]:
    """Byte-pair merges in the order BPE learns them: the most frequent adjacent pair first.

    Ties go to the alphabetically first pair, so the same corpus always gives the same merges
    (the ``tokenizers`` trainer breaks ties by hash order, which changes the tokenizer files, and
    so the fingerprint, from one build to the next).
    """
    merges: list[tuple[str, str]] = []
    while len(merges) < limit:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = Counter({_merge(word, best): count for word, count in words.items()})
    return merges


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def tiny_t5_tokenizer() -> T5TokenizerFast:
    """A T5 (SentencePiece-style Unigram) tokenizer over :data:`CORPUS`'s words; no sentinels.

    The pieces are every corpus word (scored by its log frequency) and every single character
    (scored far lower), so corpus words stay whole and other words fall back to characters. Built
    directly rather than trained: the ``tokenizers`` Unigram trainer is not deterministic.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    words = Counter(word for line in CORPUS for word in line.lower().split())
    total = sum(words.values())
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(code), -10.0) for code in range(33, 127)]  # printable ASCII
    pieces += [
        ("▁" + word, math.log(count / total))
        for word, count in sorted(words.items(), key=lambda item: (-item[1], item[0]))
    ]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(str(Path(tmp, "tokenizer.json")))
        return T5TokenizerFast.from_pretrained(tmp, local_files_only=True, extra_ids=0,
                                               eos_token="</s>", unk_token="<unk>",
                                               pad_token="<pad>")


def _clip_config(tokenizer: CLIPTokenizer, **overrides: Any) -> CLIPTextConfig:
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": tokenizer.model_max_length,
        "projection_dim": 32,
        "hidden_act": "gelu",
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPTextConfig(**(fields | overrides))


def _tiny_t5(tokenizer: T5TokenizerFast, d_model: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_ff=37,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config)


def _tiny_vae(blocks: int, latent_channels: int = 4, **overrides: Any) -> AutoencoderKL:
    """A small AutoencoderKL with ``blocks`` levels: scale factor 2**(blocks-1).

    A 4-block VAE (scale factor 8, like the real ones) keeps 256² renders around a quarter second.
    """
    channels = (8, 16, 16, 16)[:blocks]
    return AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
        **overrides,
    )


def _save(pipe: DiffusionPipeline, folder: str | Path) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


# ---------------------------------------------------------------------------------------------
# Tiny pipelines (tests)
# ---------------------------------------------------------------------------------------------


def build_tiny_sd(folder: str | Path, seed: int = 0, sample_size: int = 32) -> Path:
    """A tiny StableDiffusionPipeline (native 256²: UNet sample 32 x VAE factor 8) in ``folder``;
    ``sample_size=64`` makes it native 512² (benchmarks: the size real SD models render)."""
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    pipe = StableDiffusionPipeline(
        vae=_tiny_vae(4),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipe, folder)


def build_tiny_sdxl(folder: str | Path, seed: int = 0) -> Path:
    """A tiny StableDiffusionXLPipeline (two CLIP encoders, text_time conditioning; native 256²)."""
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids x 8 + pooled text (32)
        cross_attention_dim=64,  # both encoders' hidden states side by side (32 + 32)
        norm_num_groups=8,
    )
    pipe = StableDiffusionXLPipeline(
        vae=_tiny_vae(4),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
        force_zeros_for_empty_prompt=True,
    )
    return _save(pipe, folder)


def build_tiny_sd3(folder: str | Path, seed: int = 0) -> Path:
    """A tiny StableDiffusion3Pipeline (two CLIPs + T5, MMDiT, flow matching; native 256²)."""
    torch.manual_seed(seed)
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,  # T5 width; the two CLIPs (32 + 32) are padded to it
        pooled_projection_dim=64,  # both CLIPs' pooled projections (32 + 32)
        pos_embed_max_size=32,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae(
            4,
            latent_channels=16,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0609,
            scaling_factor=1.5035,
        ),
        text_encoder=CLIPTextModelWithProjection(_clip_config(clip_tokenizer)),
        tokenizer=clip_tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(clip_tokenizer)),
        tokenizer_2=clip_tokenizer,
        text_encoder_3=_tiny_t5(t5_tokenizer, d_model=64),
        tokenizer_3=t5_tokenizer,
    )
    return _save(pipe, folder)


def build_tiny_flux(folder: str | Path, seed: int = 0, *, guidance_embeds: bool = True,
                    kontext: bool = False) -> Path:
    """A tiny FluxPipeline (CLIP + T5, packed 2x2 latents, flow matching; native 256²).

    Flux pipelines fix their default sample size at 128 latents, so the native base is 128 x the
    VAE factor: a 2-block VAE (factor 2) gives 256. ``guidance_embeds=False`` builds a
    schnell-like model, which has no guidance input. ``kontext=True`` saves the same components
    as a FluxKontextPipeline, the edit model that takes an input image in context.
    """

    torch.manual_seed(seed)
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x 2x2 packing
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    pipe = (FluxKontextPipeline if kontext else FluxPipeline)(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(
            2,
            latent_channels=4,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.1159,
            scaling_factor=0.3611,
        ),
        text_encoder=CLIPTextModel(_clip_config(clip_tokenizer)),
        tokenizer=clip_tokenizer,
        text_encoder_2=_tiny_t5(t5_tokenizer, d_model=32),
        tokenizer_2=t5_tokenizer,
    )
    return _save(pipe, folder)


TINY_BUILDERS = {
    "sd": build_tiny_sd,
    "sdxl": build_tiny_sdxl,
    "sd3": build_tiny_sd3,
    "flux": build_tiny_flux,
}


# ---------------------------------------------------------------------------------------------
# Full-size pipelines (GPU benchmarks)
# ---------------------------------------------------------------------------------------------

_SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
}

_CLIP_L = {  # OpenAI CLIP ViT-L/14 text tower (SD1.5; SDXL's first encoder)
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
_OPENCLIP_H = {  # OpenCLIP ViT-H/14 text tower as SD2.x ships it (penultimate layer: 23 layers)
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
_OPENCLIP_BIGG = {  # OpenCLIP ViT-bigG/14 text tower (SDXL's second encoder)
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


def _full_vae(scaling_factor: float, sample_size: int, **overrides: Any) -> AutoencoderKL:
    """The SD/SDXL VAE's architecture; FLUX's is the same with 16 latent channels (``overrides``)."""
    fields: dict[str, Any] = {
        "block_out_channels": (128, 256, 512, 512),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": sample_size,
        "scaling_factor": scaling_factor,
    }
    return AutoencoderKL(**(fields | overrides))


def _sd_unet(
    sample_size: int, cross_attention_dim: int, head_dim: Any, linear: bool
) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=sample_size,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=head_dim,
        use_linear_projection=linear,
    )


def _full_sd(family: str, device: str | torch.device) -> DiffusionPipeline:
    tokenizer = tiny_clip_tokenizer()
    if family == "sd15":
        scheduler: Any = DDIMScheduler(**_SD_SCHEDULER, clip_sample=False, set_alpha_to_one=False)
        text_config = _CLIP_L
        unet_shape: tuple[int, Any, bool] = (768, 8, False)
    else:  # sd-turbo: the SD2.1 architecture at 512², one-step Euler with trailing timesteps
        scheduler = EulerDiscreteScheduler(**_SD_SCHEDULER, timestep_spacing="trailing")
        text_config = _OPENCLIP_H
        unet_shape = (1024, (5, 10, 20, 20), True)
    config = _clip_config(tokenizer, vocab_size=49408, max_position_embeddings=77, **text_config)
    with torch.device(device):  # models only: schedulers keep their tables on the CPU
        unet = _sd_unet(64, *unet_shape)
        vae = _full_vae(0.18215, 512)
        text_encoder = CLIPTextModel(config)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _full_sdxl(device: str | torch.device) -> DiffusionPipeline:
    tokenizer = tiny_clip_tokenizer()
    clip_l = _clip_config(tokenizer, vocab_size=49408, max_position_embeddings=77, **_CLIP_L)
    big_g = _clip_config(tokenizer, vocab_size=49408, max_position_embeddings=77, **_OPENCLIP_BIGG)
    with torch.device(device):  # models only: schedulers keep their tables on the CPU
        unet = _sdxl_unet()
        vae = _full_vae(0.13025, 1024)
        text_encoder = CLIPTextModel(clip_l)
        text_encoder_2 = CLIPTextModelWithProjection(big_g)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**_SD_SCHEDULER),
    )


def _sdxl_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,  # 768 (CLIP-L) + 1280 (bigG)
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,  # 6 x 256 + 1280
    )


_T5_XXL = {  # google/t5-v1_1-xxl's encoder (FLUX's second text encoder)
    "vocab_size": 32128,
    "d_model": 4096,
    "d_ff": 10240,
    "d_kv": 64,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "gated-gelu",
}


def _full_flux(device: str | torch.device) -> DiffusionPipeline:
    """FLUX.1-schnell's architecture: the 12B transformer without a guidance input, CLIP-L, the
    T5-XXL encoder and the 16-channel VAE, at 1024²."""
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    clip_l = _clip_config(clip_tokenizer, vocab_size=49408, max_position_embeddings=77, **_CLIP_L)
    t5 = T5Config(**_T5_XXL, pad_token_id=t5_tokenizer.pad_token_id,
                  eos_token_id=t5_tokenizer.eos_token_id, decoder_start_token_id=t5_tokenizer.pad_token_id)
    with torch.device(device):
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,  # 16 latent channels x 2x2 packing
            num_layers=19,
            num_single_layers=38,
            attention_head_dim=128,
            num_attention_heads=24,
            joint_attention_dim=4096,
            pooled_projection_dim=768,
            guidance_embeds=False,
            axes_dims_rope=(16, 56, 56),
        )
        vae = _full_vae(0.3611, 1024, latent_channels=16, shift_factor=0.1159,
                        use_quant_conv=False, use_post_quant_conv=False)
        text_encoder = CLIPTextModel(clip_l)
        text_encoder_2 = T5EncoderModel(t5)
    return FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
    )


_FULL_BUILDERS = {
    "sd15": lambda device: _full_sd("sd15", device),
    "sd-turbo": lambda device: _full_sd("sd-turbo", device),
    "sdxl": _full_sdxl,
    "flux-schnell": _full_flux,
}


def full_size_pipeline(family: str, *, device: str | torch.device = "cpu",
                       dtype: torch.dtype = torch.float32) -> DiffusionPipeline:
    """The FULL-SIZE architecture of ``family`` with random weights of ``dtype`` on ``device``,
    unsaved. The weights are made in ``dtype`` (FLUX's 17B parameters in fp32 would be 67 GB).

    ``device="meta"`` builds it without memory (shapes only), which is how the tests check the
    configs on a CPU.
    """
    if family not in FULL_SIZE_FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FULL_SIZE_FAMILIES)}, not {family!r}")
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return _FULL_BUILDERS[family](device)
    finally:
        torch.set_default_dtype(default)


def build_full_size(
    family: str,
    folder: str | Path,
    *,
    dtype: torch.dtype | str = torch.float16,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Path:
    """The FULL-SIZE architecture of ``family`` with random weights, saved in ``folder``.

    ``sd15`` (SD1.5, 512²), ``sd-turbo`` (the SD2.1 UNet and OpenCLIP-H encoder at 512²),
    ``sdxl`` (1024², both encoders) or ``flux-schnell`` (1024², CLIP-L and T5-XXL; 34 GB in bf16).
    Weights are initialised in ``dtype`` (a torch dtype or ``bf16``, ``fp16``, ``fp32``) on
    ``device`` (pass ``"cuda"``: SDXL is 3.5B parameters and FLUX 17B, slow to initialise on a
    CPU) and saved as safetensors. The tokenizers are the tiny trained ones (the real vocabularies
    would need a download); the text encoders keep the real vocab sizes, so every tensor has its
    real shape and cost.
    """
    if isinstance(dtype, str):
        from imagehub.engines.diffusers.loading import resolve_dtype

        dtype = resolve_dtype(dtype, str(device))
    torch.manual_seed(seed)
    return _save(full_size_pipeline(family, device=device, dtype=dtype), folder)
