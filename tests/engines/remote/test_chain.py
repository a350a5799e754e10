"""Provider chains: availability from keys, failover before an image, no failover on a refusal."""

from __future__ import annotations

import pytest
from engines.remote.fakes import KEY
from engines.remote.helpers import entry, run

from imagehub.catalog.catalog import Catalog
from imagehub.errors import GenerationFailed, ModelUnavailable, UpstreamError


def test_no_key_means_unavailable_naming_every_setting(settings) -> None:  # type: ignore[no-untyped-def]
    model = entry("nano-banana-2", settings())
    assert not model.available
    for var in ("IMAGEHUB_GEMINI_API_KEY", "IMAGEHUB_FAL_API_KEY", "IMAGEHUB_OXEN_API_KEY"):
        assert var in str(model.unavailable_reason)
    with pytest.raises(ModelUnavailable):
        model.ready_engine()


@pytest.mark.parametrize("provider", ["gemini", "fal", "oxen"])
def test_any_one_key_makes_every_nano_banana_available(settings, provider) -> None:  # type: ignore[no-untyped-def]
    s = settings(**{f"{provider}_api_key": KEY})
    for model_id in ("nano-banana-2", "nano-banana", "nano-banana-2-lite", "google-nano-banana-pro"):
        model = entry(model_id, s)
        assert model.available and model.unavailable_reason is None, model_id


def test_first_provider_with_a_key_serves(gemini, fal, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("nano-banana-2", settings(fal=fal, gemini=None)))
    assert result.info["provider"] == "fal" and "failover" not in result.info
    assert not gemini.log


def test_failover_after_a_provider_fault_is_recorded(gemini, fal, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("500", times=10)
    result = run(entry("nano-banana-2", settings(gemini=gemini, fal=fal, provider_max_retries=1)))
    assert result.info["provider"] == "fal"
    [failed] = result.info["failover"]
    assert failed["provider"] == "gemini" and "HTTP 500" in failed["error"]
    assert len(gemini.calls("POST")) == 2 and len(fal.calls("POST")) == 1


def test_failover_after_no_image(gemini, oxen, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("noimage")
    result = run(entry("nano-banana-2", settings(gemini=gemini, oxen=oxen)))
    assert result.info["provider"] == "oxen"
    assert "gemini returned no image" in result.info["failover"][0]["error"]


def test_failover_after_a_timeout(gemini, fal, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("timeout", times=5, seconds=2.0)
    result = run(entry("nano-banana-2", settings(gemini=gemini, fal=fal, provider_timeout_seconds=0.3,
                                                 provider_max_retries=0)))
    assert result.info["provider"] == "fal" and "no answer in time" in result.info["failover"][0]["error"]


def test_a_safety_block_is_not_failed_over(gemini, fal, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("safety")
    with pytest.raises(GenerationFailed, match="blocked by the safety filter"):
        run(entry("nano-banana-2", settings(gemini=gemini, fal=fal)))
    assert not fal.log


def test_every_provider_failing_is_one_upstream_error(gemini, fal, oxen, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("500", times=10)
    fal.fault("500", times=10)
    oxen.fault("500", times=10)
    with pytest.raises(UpstreamError) as raised:
        run(entry("nano-banana-2", settings(gemini=gemini, fal=fal, oxen=oxen, provider_max_retries=0)))
    detail = raised.value.detail
    assert detail.startswith("every provider failed: gemini: HTTP 500")
    assert "; fal: HTTP 500" in detail and "; oxen: HTTP 500" in detail and KEY not in detail


def test_no_image_everywhere_is_a_failed_generation(gemini, fal, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("noimage")
    fal.fault("noimage")
    with pytest.raises(GenerationFailed, match="every provider failed: gemini returned no image"):
        run(entry("nano-banana-2", settings(gemini=gemini, fal=fal)))


def test_a_toml_card_serves_a_provider_model_under_its_own_name(oxen, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "models.toml").write_text(
        '[models.house-banana]\nbackend = "oxen"\noxen_model = "nano-banana-2"\n'
        'display_name = "House Banana"\n')
    catalog = Catalog.load(settings(oxen=oxen, data_dir=tmp_path))
    model = catalog.get("house-banana")
    assert model.available and set(model.schema.properties) == {"prompt", "aspect_ratio", "input_image"}
    result = run(model, aspect_ratio="9:16")
    assert result.info["provider"] == "oxen"
    assert oxen.calls("POST")[0].body == {"model": "nano-banana-2", "prompt": "a red cube",
                                          "aspect_ratio": "9:16", "num_generations": 1}


def test_a_toml_card_with_an_unknown_option_is_listed_unavailable(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "models.toml").write_text('[models.odd]\nbackend = "fal"\nfal_model = "x/y"\ncolour = "red"\n')
    model = Catalog.load(settings(data_dir=tmp_path)).get("odd")
    assert not model.available and "unknown options for a remote model: ['colour']" in str(model.unavailable_reason)
