"""Gemini ``generateContent`` against the fake: wire form of every field, faults, retries, cancel."""

from __future__ import annotations

import base64
import io
import time

import pytest
from engines.remote.fakes import KEY, colour_of, size_of
from engines.remote.helpers import entry, run
from image_bombs import png_declaring
from PIL import Image

from imagehub.engines.remote.gemini import SAFETY_THRESHOLDS, safety_settings
from imagehub.errors import GenerationCancelled, GenerationFailed, UpstreamError

NB2 = "gemini-3.1-flash-image"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"


def sent(gemini):  # type: ignore[no-untyped-def]
    calls = gemini.calls("POST", ":generateContent")
    assert calls, "nothing reached the fake"
    return calls[-1]


def test_every_seed_field_reaches_gemini_in_its_form(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    model = entry("nano-banana-2", settings(gemini=gemini))
    result = run(model, aspect_ratio="16:9", resolution="4K", enable_web_search=True,
                 safety_tolerance="2", thinking_level="high")
    request = sent(gemini)
    assert request.path == f"/v1beta/models/{NB2}:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    body = request.body
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a red cube"}]}]
    config = body["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "4K"}
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["thinkingConfig"] == {"thinkingLevel": "high"}
    assert config["seed"] == 7
    assert body["tools"] == [{"google_search": {}}]
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "BLOCK_LOW_AND_ABOVE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_LOW_AND_ABOVE"},
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_MEDIUM_AND_ABOVE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_MEDIUM_AND_ABOVE"},
    ]
    # the final image, not the thought image; the provider's own pixels and size
    [image] = result.images
    assert image.size == size_of("4K", "16:9")
    assert image.getpixel((5, 5)) == colour_of("a red cube")
    assert result.info["provider"] == "gemini" and result.info["provider_model"] == NB2
    assert result.info["text"] == ["Here is your image."]
    assert KEY not in repr(result.info)


def test_seed_defaults_reach_gemini(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    """The seed page's defaults: auto (no aspectRatio), 2K, web search on, tolerance 6."""
    run(entry("nano-banana-2", settings(gemini=gemini)))
    body = sent(gemini).body
    assert body["generationConfig"]["imageConfig"] == {"imageSize": "2K"}
    assert "thinkingConfig" not in body["generationConfig"]
    assert body["tools"] == [{"google_search": {}}]
    assert {s["threshold"] for s in body["safetySettings"]} == {"BLOCK_NONE"}


def test_google_search_is_the_later_name_and_wins(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    model = entry("nano-banana-2", settings(gemini=gemini))
    run(model, enable_web_search=True, google_search=False)
    assert "tools" not in sent(gemini).body
    run(model, enable_web_search=False, google_search=True)
    assert sent(gemini).body["tools"] == [{"google_search": {}}]
    run(model, enable_web_search=False)
    assert "tools" not in sent(gemini).body


def test_resolution_512_and_input_images_as_inline_data(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    result = run(entry("nano-banana-2", settings(gemini=gemini)), resolution="512", input_image=[uri, uri])
    body = sent(gemini).body
    assert body["generationConfig"]["imageConfig"] == {"imageSize": "512"}
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": "a red cube"} and len(parts) == 3
    sent_image = Image.open(io.BytesIO(base64.b64decode(parts[1]["inlineData"]["data"])))
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert sent_image.size == (30, 20) and sent_image.convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    assert result.images[0].size == (512, 512)


def photo(width: int, height: int) -> Image.Image:
    """A photo-like image (smooth, with sensor noise): at 12 megapixels, a 1.9 MB JPEG that is
    11 MB as a PNG."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    noise = np.random.default_rng(0).integers(-6, 7, size=(height, width, 3))
    return Image.fromarray(np.clip(smooth + noise, 0, 255).astype(np.uint8))


def test_a_phone_photo_goes_as_a_jpeg_within_gemini_s_request_limit(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    photo(4000, 3000).save(buffer, format="JPEG", quality=92)  # as a phone sends it
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()

    result = run(entry("nano-banana-2", settings(gemini=gemini)), input_image=[uri, uri])

    parts = sent(gemini).body["contents"][0]["parts"][1:]
    # as PNGs, two 12-megapixel photos are 30 MB of base64: Gemini's 400 for over 20 MB
    assert [p["inlineData"]["mimeType"] for p in parts] == ["image/jpeg"] * 2
    sent_image = Image.open(io.BytesIO(base64.b64decode(parts[0]["inlineData"]["data"])))
    assert sent_image.format == "JPEG" and sent_image.size == (4000, 3000)
    assert len(result.images) == 1


@pytest.mark.parametrize("tolerance", ["1", "2", "3", "4", "5", "6"])
def test_safety_tolerance_mapping_is_accepted_and_monotone(gemini, settings, tolerance) -> None:  # type: ignore[no-untyped-def]
    run(entry("nano-banana-2", settings(gemini=gemini)), safety_tolerance=tolerance)
    assert sent(gemini).body["safetySettings"] == safety_settings(tolerance)
    order = ["BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE"]
    if tolerance != "1":
        previous = SAFETY_THRESHOLDS[str(int(tolerance) - 1)]
        now = SAFETY_THRESHOLDS[tolerance]
        assert all(order.index(b) >= order.index(a) for a, b in zip(previous, now)) and previous != now


def test_n_images_are_concurrent_calls_with_distinct_seeds(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("nano-banana-2", settings(gemini=gemini)), n=3)
    seeds = sorted(c.body["generationConfig"]["seed"] for c in gemini.calls("POST"))
    assert seeds == [7, 8, 9] and len(result.images) == 3


def test_other_nano_banana_cards_send_only_what_their_model_takes(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    s = settings(gemini=gemini)
    run(entry("nano-banana", s), aspect_ratio="3:2")
    body = sent(gemini).body
    assert sent(gemini).path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2"} and "tools" not in body
    run(entry("google-nano-banana-pro", s), resolution="4K", enable_web_search=True)
    assert sent(gemini).path == "/v1beta/models/gemini-3-pro-image:generateContent"
    assert sent(gemini).body["tools"] == [{"google_search": {}}]
    result = run(entry("nano-banana-2-lite", s), aspect_ratio="8:1")
    assert sent(gemini).path == "/v1beta/models/gemini-3.1-flash-lite-image:generateContent"
    assert result.images[0].size == size_of("1K", "8:1")


def test_a_retired_model_code_passes_to_the_next_and_stays_there(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.retired.add(NB2)  # Google shut Nano Banana 2's code down
    model = entry("nano-banana-2", settings(gemini=gemini))

    first = run(model, resolution="1K")
    second = run(model, resolution="1K")

    paths = [c.path.split("/")[-1] for c in gemini.calls("POST")]
    assert paths == [f"{NB2}:generateContent", "gemini-nano-banana-2.1:generateContent",
                     "gemini-nano-banana-2.1:generateContent"]  # the second run asks 2.1 at once
    assert first.info["provider_model"] == second.info["provider_model"] == "gemini-nano-banana-2.1"
    assert len(first.images) == len(second.images) == 1


def test_when_every_code_is_retired_the_error_names_them_and_the_card_option(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.retired.update({NB2, "gemini-nano-banana-2.1"})
    with pytest.raises(UpstreamError) as raised:
        run(entry("nano-banana-2", settings(gemini=gemini)), resolution="1K")
    message = str(raised.value.detail)
    assert message.startswith(f"gemini: HTTP 404 for {NB2}: NOT_FOUND models/{NB2} is not found")
    assert "HTTP 404 for gemini-nano-banana-2.1:" in message
    assert message.endswith("the card's gemini_model names the codes to try")
    with pytest.raises(UpstreamError, match="set gemini_model on the card to a code Google serves"):
        gemini.retired.add("gemini-2.5-flash-image")
        run(entry("nano-banana", settings(gemini=gemini)))


def test_only_gemini_takes_a_list_of_model_codes(settings) -> None:  # type: ignore[no-untyped-def]
    from imagehub.engines.remote import RemoteEngine

    with pytest.raises(ValueError, match=r"fal_model: \['a', 'b'\] must be one model code"):
        RemoteEngine(settings(), ["fal"], {"fal": ["a", "b"]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"gemini_model: \['x', 5\] must be a model code \(a string\) or a list"):
        RemoteEngine(settings(), ["gemini"], {"gemini": ["x", 5]})  # type: ignore[dict-item]


def test_429_is_retried_honouring_retry_after(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("429", times=2, retry_after=1)
    started = time.monotonic()
    result = run(entry("nano-banana-2", settings(gemini=gemini)))
    assert time.monotonic() - started >= 2.0  # two waits of Retry-After: 1
    assert len(gemini.calls("POST")) == 3 and result.info["http_requests"] == 3


def test_429_is_retried_after_google_s_retry_delay_in_the_body(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("429", times=1, retry_delay="1.5s")
    started = time.monotonic()
    result = run(entry("nano-banana-2", settings(gemini=gemini)))
    assert time.monotonic() - started >= 1.5  # not the 0.01 s backoff
    assert result.info["http_requests"] == 2
    gemini.fault("429", times=5, retry_delay="3600s")
    with pytest.raises(UpstreamError, match="retry after 3600 s"):
        run(entry("nano-banana-2", settings(gemini=gemini)))


def test_500_retries_are_bounded_then_upstream_error(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("500", times=10)
    with pytest.raises(UpstreamError) as raised:
        run(entry("nano-banana-2", settings(gemini=gemini, provider_max_retries=3)))
    assert len(gemini.calls("POST")) == 4
    assert raised.value.status == 502
    assert "gemini: HTTP 500: INTERNAL An internal error has occurred." in raised.value.detail
    assert "gave up after 4 tries" in raised.value.detail


def test_503_then_success(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("503", times=1)
    assert run(entry("nano-banana-2", settings(gemini=gemini))).info["http_requests"] == 2


def test_a_retry_after_beyond_the_cap_fails_at_once(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("429", times=5, retry_after=3600)
    with pytest.raises(UpstreamError, match="retry after 3600 s"):
        run(entry("nano-banana-2", settings(gemini=gemini)))
    assert len(gemini.calls("POST")) == 1


def test_timeouts_are_retried_then_fail(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("timeout", times=2, seconds=2.0)
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="no answer in time"):
        run(entry("nano-banana-2", settings(gemini=gemini, provider_timeout_seconds=0.5,
                                            provider_max_retries=1)))
    assert len(gemini.calls("POST")) == 2 and time.monotonic() - started < 3.0


@pytest.mark.parametrize("kind, reason", [("safety", "SAFETY, HARM_CATEGORY_DANGEROUS_CONTENT"),
                                          ("image_safety", "IMAGE_SAFETY")])
def test_safety_block_fails_the_generation_and_says_so(gemini, settings, kind, reason) -> None:  # type: ignore[no-untyped-def]
    gemini.fault(kind)
    with pytest.raises(GenerationFailed) as raised:
        run(entry("nano-banana-2", settings(gemini=gemini)), safety_tolerance="3")
    assert str(raised.value) == f"blocked by the safety filter ({reason}) at tolerance 3 (provider gemini)"
    assert len(gemini.calls("POST")) == 1  # a refusal is not retried


def test_tolerance_decides_a_block_at_the_provider(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    model = entry("nano-banana-2", settings(gemini=gemini))
    with pytest.raises(GenerationFailed, match="blocked by the safety filter"):
        run(model, prompt="a violent scene", safety_tolerance="5")
    assert run(model, prompt="a violent scene", safety_tolerance="6").images


def test_no_image_fails_the_generation(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("noimage")
    with pytest.raises(GenerationFailed, match="gemini returned no image .*a red cube"):
        run(entry("nano-banana-2", settings(gemini=gemini)))


def test_garbage_is_an_upstream_error(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("garbage")
    with pytest.raises(UpstreamError, match="gemini: answered garbage"):
        run(entry("nano-banana-2", settings(gemini=gemini)))


@pytest.mark.parametrize("data,message", [
    # between Pillow's warning (89M pixels) and its error (179M): checked before decoding
    (png_declaring(10000, 10000), "inlineData: ({n} bytes) is an image of 10000x10000 "
                                  "(100000000 pixels), over the limit of 89478485 pixels"),
    # a format Pillow knows but a provider's answer has no business in (EPS runs Ghostscript)
    (EPS, "inlineData: ({n} bytes) is not a readable image (not a PNG/JPEG/WebP/GIF/BMP file)"),
])
def test_an_unusable_image_is_an_upstream_error(gemini, settings, data: bytes,  # type: ignore[no-untyped-def]
                                                message: str) -> None:
    gemini.fault("image", data=data)
    with pytest.raises(UpstreamError) as raised:
        run(entry("nano-banana-2", settings(gemini=gemini)))
    assert raised.value.detail == "gemini: answered an unusable image: " + message.format(n=len(data))


def test_a_bad_key_is_an_upstream_error_that_never_shows_the_key(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    model = entry("nano-banana-2", settings(gemini=gemini, gemini_api_key="wrong-key-abcdef"))
    with pytest.raises(UpstreamError) as raised:
        run(model)
    assert "API key not valid" in raised.value.detail and "wrong-key-abcdef" not in raised.value.detail
    assert len(gemini.calls("POST")) == 1  # 400 is not retried


def test_cancel_aborts_the_request_in_flight(gemini, settings) -> None:  # type: ignore[no-untyped-def]
    gemini.fault("timeout", seconds=3.0)
    steps: list[int] = []

    def on_step(step: int, total: int) -> None:
        steps.append(step)
        if step >= 2:
            raise GenerationCancelled("job")

    started = time.monotonic()
    with pytest.raises(GenerationCancelled):
        run(entry("nano-banana-2", settings(gemini=gemini, provider_poll_seconds=0.1)), on_step=on_step)
    assert time.monotonic() - started < 1.5 and steps == [1, 2]
