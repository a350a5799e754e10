"""The random-weight pipelines of ``dummy``: tokenizers built offline, full-size shapes."""

from __future__ import annotations

import pytest
import torch

from imagehub.engines.diffusers import dummy


def test_clip_tokenizer_is_learned_bpe_with_no_unknown_tokens():
    tokenizer = dummy.tiny_clip_tokenizer()

    ids = tokenizer("A photo of a Zebra, #42!", padding="max_length", max_length=77).input_ids

    assert len(ids) == 77 and tokenizer.model_max_length == 77
    assert ids[0] == tokenizer.bos_token_id
    body = ids[1 : ids.index(tokenizer.eos_token_id)]
    tokens = tokenizer.convert_ids_to_tokens(body)
    assert tokens == [
        "a</w>",
        "photo</w>",
        "of</w>",
        "a</w>",
        "z",
        "e",
        "b",
        "r",
        "a</w>",
        ",</w>",
        "#</w>",
        "4</w>",
        "2</w>",
        "!</w>",
    ]  # merges, then bytes
    assert tokenizer.decode(body) == "a photo of a zebra , # 4 2 !"


def test_tokenizers_are_the_same_on_every_build():
    first, second = dummy.tiny_clip_tokenizer(), dummy.tiny_clip_tokenizer()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    first_t5, second_t5 = dummy.tiny_t5_tokenizer(), dummy.tiny_t5_tokenizer()
    assert first_t5.backend_tokenizer.to_str() == second_t5.backend_tokenizer.to_str()


def test_t5_tokenizer_keeps_corpus_words_whole_and_ends_with_eos():
    tokenizer = dummy.tiny_t5_tokenizer()

    ids = tokenizer("A photo of a Zebra!").input_ids

    assert tokenizer.convert_ids_to_tokens(ids) == [
        "▁",
        "A",
        "▁photo",
        "▁of",
        "▁a",
        "▁",
        "Z",
        "e",
        "b",
        "r",
        "a",
        "!",
        "</s>",
    ]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.pad_token_id == 0


# Parameter counts of the published checkpoints these architectures reproduce.
FULL_SIZE_PARAMETERS = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd-turbo": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
    "flux-schnell": {  # FLUX.1-dev's transformer is 10_229_760 more: its guidance embedder
        "transformer": 11_891_178_560,
        "vae": 83_819_683,
        "text_encoder": 123_060_480,
        "text_encoder_2": 4_762_310_656,
    },
}


@pytest.mark.parametrize("family", [f for f in dummy.FULL_SIZE_FAMILIES if f != "flux-schnell"])
def test_full_size_architectures_match_the_real_models(family):
    pipe = dummy.full_size_pipeline(family, device="meta")  # shapes only, no memory
    counts = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in FULL_SIZE_PARAMETERS[family]
    }
    assert counts == FULL_SIZE_PARAMETERS[family]

    unet = pipe.unet
    side = unet.config.sample_size
    assert side * pipe.vae_scale_factor == (1024 if family == "sdxl" else 512)
    with torch.device("meta"):
        sample = torch.randn(2, 4, side, side)
        context = torch.randn(2, 77, unet.config.cross_attention_dim)
        extra = {}
        if family == "sdxl":
            text_embeds = torch.randn(2, pipe.text_encoder_2.config.projection_dim)
            extra["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": torch.randn(2, 6)}
        out = unet(sample, torch.tensor([10, 10]), context, **extra).sample
    assert out.shape == (2, 4, side, side)
    hidden = pipe.text_encoder.config.hidden_size
    if family == "sdxl":
        hidden += pipe.text_encoder_2.config.hidden_size
    assert hidden == unet.config.cross_attention_dim


def test_full_size_flux_schnell_matches_the_real_model_and_is_made_in_the_dtype_asked():
    pipe = dummy.full_size_pipeline("flux-schnell", device="meta", dtype=torch.bfloat16)
    counts = {name: sum(p.numel() for p in getattr(pipe, name).parameters())
              for name in FULL_SIZE_PARAMETERS["flux-schnell"]}
    assert counts == FULL_SIZE_PARAMETERS["flux-schnell"]
    assert {p.dtype for p in pipe.transformer.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32  # put back

    transformer = pipe.transformer
    assert transformer.config.guidance_embeds is False  # schnell: no guidance input
    side = 1024 // pipe.vae_scale_factor // 2  # latents are packed 2x2 into tokens
    with torch.device("meta"):
        tokens = torch.randn(2, side * side, transformer.config.in_channels)
        context = torch.randn(2, 256, pipe.text_encoder_2.config.d_model)
        pooled = torch.randn(2, pipe.text_encoder.config.hidden_size)  # CLIP-L's pooled output
        out = transformer(hidden_states=tokens, encoder_hidden_states=context,
                          pooled_projections=pooled, timestep=torch.tensor([1.0, 1.0]),
                          img_ids=torch.zeros(side * side, 3), txt_ids=torch.zeros(256, 3)).sample
    assert out.shape == (2, 4096, 64)
    assert pipe.vae.config.latent_channels * 4 == transformer.config.in_channels


def test_full_size_refuses_an_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="family must be one of sd15, sd-turbo, sdxl, flux-schnell, "
                                         "not 'sd4'"):
        dummy.build_full_size("sd4", tmp_path)
