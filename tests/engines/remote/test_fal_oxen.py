"""fal.ai's queue and the Oxen-hub passthrough against their fakes: wire form, faults, cancel."""

from __future__ import annotations

import base64
import io

import pytest
from engines.remote.fakes import KEY, colour_of, size_of
from engines.remote.helpers import entry, run
from PIL import Image

from imagehub.errors import GenerationCancelled, GenerationFailed, UpstreamError


def _data_uri(colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _cancel_after(polls: int):  # type: ignore[no-untyped-def]
    def on_step(step: int, total: int) -> None:
        if step >= polls:
            raise GenerationCancelled("job")
    return on_step


# ---- fal.ai ------------------------------------------------------------------------------------

def test_fal_queue_round_trip_with_every_seed_field(fal, settings) -> None:  # type: ignore[no-untyped-def]
    steps: list[tuple[int, int]] = []
    result = run(entry("nano-banana-2", settings(fal=fal)), on_step=lambda s, t: steps.append((s, t)),
                 aspect_ratio="21:9", resolution="512", enable_web_search=False, safety_tolerance="3",
                 thinking_level="minimal")
    [submit] = fal.calls("POST")
    assert submit.path == "/fal-ai/nano-banana-2" and submit.headers["authorization"] == f"Key {KEY}"
    assert submit.body == {"prompt": "a red cube", "num_images": 1, "seed": 7, "output_format": "png",
                           "aspect_ratio": "21:9", "resolution": "0.5K", "safety_tolerance": "3",
                           "enable_web_search": False, "thinking_level": "minimal"}
    request_id = result.info["fal_request_id"]
    assert fal.calls("GET", f"/fal-ai/nano-banana-2/requests/{request_id}/status")
    assert fal.calls("GET", f"/fal-ai/nano-banana-2/requests/{request_id}")
    assert steps and steps[0] == (1, 2)  # one step per poll
    [image] = result.images
    assert image.size == size_of("512", "21:9") and image.getpixel((1, 1)) == colour_of("a red cube0")
    assert result.info["provider"] == "fal"


def test_fal_seed_defaults_and_n(fal, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("nano-banana-2", settings(fal=fal)), n=2)
    body = fal.calls("POST")[0].body
    assert "aspect_ratio" not in body  # auto: fal's own default, which is auto
    assert body["resolution"] == "2K" and body["enable_web_search"] is True
    assert body["safety_tolerance"] == "6" and body["num_images"] == 2
    assert len(result.images) == 2


def test_fal_edit_variant_takes_image_urls(fal, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("nano-banana-2", settings(fal=fal)), input_image=_data_uri((9, 9, 200)))
    [submit] = fal.calls("POST")
    assert submit.path == "/fal-ai/nano-banana-2/edit"
    [url] = submit.body["image_urls"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    assert sent.getpixel((0, 0)) == (9, 9, 200)
    # status and result live under the app id, without /edit
    assert fal.calls("GET", f"/fal-ai/nano-banana-2/requests/{result.info['fal_request_id']}/status")


def test_fal_cancel_cancels_there_too(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.fault("hang")
    with pytest.raises(GenerationCancelled):
        run(entry("nano-banana-2", settings(fal=fal)), on_step=_cancel_after(3))
    [cancel] = fal.calls("PUT")
    request_id = next(iter(fal.jobs))
    assert cancel.path == f"/fal-ai/nano-banana-2/requests/{request_id}/cancel"
    assert cancel.headers["authorization"] == f"Key {KEY}" and fal.jobs[request_id].cancelled


def test_fal_polls_and_reads_the_urls_its_submit_answered(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.urls_at = f"{fal.url}/q"
    assert len(run(entry("nano-banana-2", settings(fal=fal))).images) == 1
    request_id = next(iter(fal.jobs))
    gets = [c.path for c in fal.calls("GET") if not c.path.startswith("/files/")]
    assert gets and all(p.startswith(f"/q/fal-ai/nano-banana-2/requests/{request_id}") for p in gets)


def test_fal_urls_on_another_origin_are_not_sent_the_key(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.urls_at = "http://127.0.0.1:9/q"  # not fal's origin: the key must not go there
    assert len(run(entry("nano-banana-2", settings(fal=fal))).images) == 1
    request_id = next(iter(fal.jobs))
    assert {c.path for c in fal.calls("GET") if not c.path.startswith("/files/")} == {f"/fal-ai/nano-banana-2/requests/{request_id}/status",
                                                   f"/fal-ai/nano-banana-2/requests/{request_id}"}


def test_fal_content_policy_is_a_safety_block(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.fault("safety")
    with pytest.raises(GenerationFailed) as raised:
        run(entry("nano-banana-2", settings(fal=fal)), safety_tolerance="1")
    assert str(raised.value) == ("blocked by the safety filter (content_policy_violation) at "
                                 "tolerance 1 (provider fal)")


def test_fal_no_image_fails_the_generation(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.fault("noimage")
    with pytest.raises(GenerationFailed, match="fal returned no image"):
        run(entry("nano-banana-2", settings(fal=fal)))


def test_fal_request_it_marked_failed_is_final_not_retried(fal, settings) -> None:  # type: ignore[no-untyped-def]
    """fal retries a request that fails at its runner (up to 10 times) before it answers the result
    with an ``error_type``: asking for the result again would only wait for the same answer."""
    fal.fault("runner")
    with pytest.raises(UpstreamError) as raised:
        run(entry("nano-banana-2", settings(fal=fal)))
    request_id = next(iter(fal.jobs))
    result = f"/fal-ai/nano-banana-2/requests/{request_id}"
    assert [c.path for c in fal.calls("GET", result)].count(result) == 1
    assert str(raised.value) == ("fal: HTTP 503: the request failed at fal (runner_disconnected: "
                                 "Runner disconnected; fal retries such requests itself)")


def test_fal_429_on_submit_is_retried(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.fault("429", times=2)
    result = run(entry("nano-banana-2", settings(fal=fal)))
    assert len(fal.calls("POST")) == 3 and result.images


def test_fal_bad_key_is_upstream_401(fal, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamError, match="fal: HTTP 401: No user found"):
        run(entry("nano-banana-2", settings(fal=fal, fal_api_key="nope")))


def test_fal_deadline_fails_a_job_that_never_ends(fal, settings) -> None:  # type: ignore[no-untyped-def]
    fal.fault("hang")
    with pytest.raises(UpstreamError, match="did not finish before the deadline"):
        run(entry("nano-banana-2", settings(fal=fal, provider_deadline_seconds=0.5)))


# ---- an upstream Oxen hub ----------------------------------------------------------------------

def test_oxen_passthrough_forwards_fields_and_downloads(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    result = run(entry("nano-banana-2", settings(oxen=oxen)), aspect_ratio="4:3", resolution="1K",
                 input_image=_data_uri((1, 100, 1)))
    [enqueue] = oxen.calls("POST")
    assert enqueue.path == "/api/ai/queue" and enqueue.headers["authorization"] == f"Bearer {KEY}"
    body = dict(enqueue.body)
    assert body.pop("input_image")[0].startswith("data:image/png;base64,")
    assert body == {"model": "nano-banana-2", "prompt": "a red cube", "num_generations": 1,
                    "aspect_ratio": "4:3", "resolution": "1K", "enable_web_search": True,
                    "safety_tolerance": "6"}
    assert result.images[0].getpixel((0, 0)) == colour_of("a red cube")
    assert result.info["provider"] == "oxen" and len(result.info["upstream_generation_ids"]) == 1


def test_oxen_cancel_deletes_upstream(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    oxen.fault("hang")
    with pytest.raises(GenerationCancelled):
        run(entry("nano-banana-2", settings(oxen=oxen)), on_step=_cancel_after(2))
    [row] = oxen.rows.values()
    assert oxen.calls("DELETE", f"/api/ai/queue/{row['generation_id']}")
    assert row["status"] == "cancelled"


def test_oxen_upstream_safety_failure_is_a_safety_block(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    oxen.fault("safety")
    with pytest.raises(GenerationFailed, match="blocked by the safety filter .* \\(provider oxen\\)"):
        run(entry("nano-banana-2", settings(oxen=oxen)))


def test_oxen_upstream_other_failure_is_upstream_error(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    oxen.fault("fail")
    with pytest.raises(UpstreamError, match="oxen: the upstream generation failed: engine error"):
        run(entry("nano-banana-2", settings(oxen=oxen)))


def test_oxen_rejects_unknown_model_as_upstream_error(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamError, match="oxen: HTTP 404: resource_not_found Model not found: nano-banana"):
        run(entry("nano-banana", settings(oxen=oxen)))


def test_oxen_model_unavailable_upstream_is_not_retried(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamError, match="oxen: HTTP 503: model_unavailable google-nano-banana-pro runs"):
        run(entry("google-nano-banana-pro", settings(oxen=oxen)))
    assert len(oxen.calls("POST")) == 1


def test_oxen_other_5xx_is_retried(oxen, settings) -> None:  # type: ignore[no-untyped-def]
    oxen.fault("500", times=2)
    assert run(entry("nano-banana-2", settings(oxen=oxen))).info["http_requests"] >= 3
    assert len(oxen.calls("POST")) == 3
