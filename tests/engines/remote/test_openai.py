"""OpenAI Images (gpt-image-1) against its fake: JSON generations, multipart edits, refusals."""

from __future__ import annotations

import base64
import io

import pytest
from engines.remote.fakes import KEY, colour_of
from engines.remote.helpers import entry, run
from PIL import Image

from imagehub.errors import GenerationFailed, UpstreamError


def test_generations_wire_form(openai, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("gpt-image-1", settings(openai=openai)), n=2, aspect_ratio="3:2", quality="high",
                 safety_tolerance="5")
    [call] = openai.calls("POST", "/v1/images/generations")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.body == {"model": "gpt-image-1", "prompt": "a red cube", "n": 2, "size": "1536x1024",
                         "moderation": "low", "output_format": "png", "quality": "high"}
    assert [image.size for image in result.images] == [(1536, 1024)] * 2
    assert result.images[1].getpixel((0, 0)) == colour_of("a red cube1")
    assert result.info["provider"] == "openai"


def test_defaults_and_edits_are_multipart(openai, settings) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (50, 60, 70)).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    run(entry("gpt-image-1", settings(openai=openai)), input_image=[uri])
    [call] = openai.calls("POST", "/v1/images/edits")
    assert call.headers["content-type"].startswith("multipart/form-data")
    [(name, data, kind)] = openai.last_edit_images
    assert name == "image[]" and kind == "image/png"
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)) == (50, 60, 70)


def test_safety_refusal(openai, settings) -> None:  # type: ignore[no-untyped-def]
    openai.fault("safety")
    with pytest.raises(GenerationFailed) as raised:
        run(entry("gpt-image-1", settings(openai=openai)))
    assert str(raised.value) == "blocked by the safety filter (moderation_blocked) at tolerance 4 (provider openai)"


def test_retries_then_no_image(openai, settings) -> None:  # type: ignore[no-untyped-def]
    openai.fault("429", times=1)
    openai.fault("noimage")
    with pytest.raises(GenerationFailed, match="openai returned no image"):
        run(entry("gpt-image-1", settings(openai=openai)))
    assert len(openai.calls("POST")) == 2


def test_the_echoed_key_is_scrubbed(openai, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamError) as raised:
        run(entry("gpt-image-1", settings(openai=openai, openai_api_key="sk-secret-999")))
    assert "Incorrect API key provided: ***" in raised.value.detail
    assert "sk-secret-999" not in raised.value.detail
