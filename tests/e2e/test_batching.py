"""Dynamic batching through the real server: queued jobs and sync calls of one model share one
pipeline call; each keeps its own seed, progress, cancel and result."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from e2e.test_events import StreamReader, _for
from PIL import Image
from tests_helpers import wait_for_status

from imagehub.catalog.sizes import output_size
from imagehub.engines.diffusers import dummy
from imagehub.testing import ServerProcess, write_catalog

BATCH = 6
TOLERANCE = 3  # of 255


def start_batching_server(data_dir: Path, tiny_sd_dir: Path, more_cards: str = "",
                          **env: str) -> ServerProcess:
    """A server batching up to BATCH images: ``tiny-sd`` (preloaded), ``tiny-sd-slow`` (30
    steps), ``more_cards`` (TOML), and any more ``IMAGEHUB_*`` settings in ``env``."""
    catalog = write_catalog(data_dir, tiny_sd_dir, **{"tiny-sd-slow": 30})
    with catalog.open("a") as toml:
        toml.write(more_cards)
    settings = {"IMAGEHUB_MAX_BATCH_SIZE": str(BATCH), "IMAGEHUB_BATCH_WAIT_MS": "300",
                "IMAGEHUB_PRELOAD_MODELS": "tiny-sd", **env}
    return ServerProcess(data_dir, settings).start()


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory: pytest.TempPathFactory,
                    tiny_sd_dir: Path) -> Iterator[ServerProcess]:
    kontext = dummy.build_tiny_flux(tmp_path_factory.mktemp("tiny-kontext") / "model", kontext=True)
    edit_model = (f'[models.tiny-kontext]\nbackend = "diffusers"\nsource = "{kontext}"\n'
                  'device = "cpu"\n[models.tiny-kontext.defaults]\nnum_inference_steps = 2\n'
                  'resolution = "512"\n'
                  f'[models.tiny-sd-pairs]\nbackend = "diffusers"\nsource = "{tiny_sd_dir}"\n'
                  'device = "cpu"\nmax_batch_size = 2\n')
    proc = start_batching_server(tmp_path_factory.mktemp("batching-hub"), tiny_sd_dir, edit_model,
                                 IMAGEHUB_MODEL_MEMORY_BUDGET_GB="1")
    yield proc
    proc.stop()


@pytest.fixture
def api(batching_server: ServerProcess) -> Iterator[httpx.Client]:
    with batching_server.client() as client:
        yield client


def engine_info(server: ServerProcess, generation_id: str) -> dict[str, Any]:
    return server.stored_row(generation_id)["provenance"]["engine"]


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def pixels(api: httpx.Client, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(api.get(url).content))).astype(np.int16)


def test_queued_jobs_run_as_one_batch_with_solo_pixels_and_own_progress(
    batching_server: ServerProcess, api: httpx.Client
) -> None:
    stream = StreamReader(batching_server)
    try:
        body = {"model": "tiny-sd", "prompt": "a batch of cats"}
        ids = [g["generation_id"] for seed, n in ((40, 4), (44, BATCH - 4)) for g in api.post(
            "/api/ai/queue", json=body | {"seed": seed, "num_generations": n}).json()["generations"]]
        rows = [wait_for_status(api, i, {"succeeded", "failed"}) for i in ids]
        for i in ids:
            stream.wait(_for(i, "media_generation_completed"))
    finally:
        stream.close()

    assert [r["status"] for r in rows] == ["succeeded"] * BATCH
    assert [engine_info(batching_server, i)["batch_size"] for i in ids] == [BATCH] * BATCH
    for i in ids:  # each job: started, progress 1/2 then 2/2, completed
        mine = [e for e in stream.events if e["data"].get("generation_id") == i]
        assert [e["event"] for e in mine] == ["media_generation_started"] + \
            ["media_generation_progress"] * 2 + ["media_generation_completed"]
        assert [(e["data"]["step"], e["data"]["total_steps"]) for e in mine[1:3]] == [(1, 2), (2, 2)]
    # the fourth job (seed 43) has the pixels of a solo sync call with seed 43
    solo = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "a batch of cats",
                                                      "seed": 43}).json()
    assert engine_info(batching_server, solo["generation_id"])["batch_size"] == 1
    batched = pixels(api, rows[3]["result_url"])
    assert np.abs(batched - pixels(api, solo["image_url"])).max() <= TOLERANCE
    assert np.abs(batched - pixels(api, rows[2]["result_url"])).max() > 20


def test_a_card_s_own_max_batch_size_caps_its_calls(batching_server: ServerProcess,
                                                    api: httpx.Client) -> None:
    body = {"model": "tiny-sd-pairs", "prompt": "two at a time", "seed": 3, "num_generations": 4}
    ids = [g["generation_id"] for g in api.post("/api/ai/queue", json=body).json()["generations"]]
    rows = [wait_for_status(api, i, {"succeeded", "failed"}) for i in ids]

    assert [r["status"] for r in rows] == ["succeeded"] * 4
    assert [engine_info(batching_server, i)["batch_size"] for i in ids] == [2] * 4  # not BATCH


def test_a_cancel_inside_a_batch_leaves_the_others_running(
    batching_server: ServerProcess, api: httpx.Client
) -> None:
    stream = StreamReader(batching_server)
    try:
        body = {"model": "tiny-sd-slow", "prompt": "cancel one", "seed": 1, "num_generations": 4}
        ids = [g["generation_id"] for g in api.post("/api/ai/queue", json=body).json()["generations"]]
        victim = ids[1]
        stream.wait(lambda e: _for(victim, "media_generation_progress")(e) and e["data"]["step"] >= 2)
        assert api.delete(f"/api/ai/queue/{victim}").status_code == 200
        rows = {i: wait_for_status(api, i, {"succeeded", "failed", "cancelled"}) for i in ids}
    finally:
        stream.close()

    assert [rows[i]["status"] for i in ids] == ["succeeded", "cancelled", "succeeded", "succeeded"]
    assert rows[victim]["result_url"] is None
    assert not (batching_server.data_dir / "files" / victim).exists()
    assert {engine_info(batching_server, i)["batch_size"] for i in ids if i != victim} == {4}
    victim_steps = [e["data"]["step"] for e in stream.events
                    if _for(victim, "media_generation_progress")(e)]
    other_steps = [e["data"]["step"] for e in stream.events
                   if _for(ids[0], "media_generation_progress")(e)]
    assert max(victim_steps) < 30 and other_steps == list(range(1, 31))


def test_sync_calls_and_queued_jobs_share_batches(
    batching_server: ServerProcess, api: httpx.Client
) -> None:
    body = {"model": "tiny-sd", "prompt": "together", "seed": 5}
    with ThreadPoolExecutor(4) as pool:
        syncs = [pool.submit(api.post, "/api/ai/images/generate", json=body | {"seed": 5 + n})
                 for n in range(3)]
        queued = api.post("/api/ai/queue", json=body | {"num_generations": 2}).json()["generations"]
        answers = [f.result().json() for f in syncs]

    rows = [wait_for_status(api, g["generation_id"], {"succeeded"}) for g in queued]
    ids = [a["generation_id"] for a in answers] + [r["generation_id"] for r in rows]
    sizes = [engine_info(batching_server, i)["batch_size"] for i in ids]
    assert all(a["images"][0]["url"] for a in answers)
    assert max(sizes) > 1  # at least one call carried more than one request
    assert sum(1 for s in sizes if s > 1) >= 2


def test_preloaded_models_are_loaded_before_the_server_answers(batching_server: ServerProcess) -> None:
    log = (batching_server.data_dir / "server.log").read_text()
    assert "preloaded tiny-sd" in log


def test_image_to_image_over_http_strength_zero_returns_the_input(api: httpx.Client) -> None:
    image = Image.new("RGB", (512, 512), (200, 40, 40))
    image.paste((20, 20, 220), (0, 0, 256, 512))
    uri = data_uri(image)
    schema = api.get("/api/ai/models/tiny-sd").json()["request_schema"]["properties"]

    answer = api.post("/api/ai/images/edit", json={"model": "tiny-sd", "prompt": "keep it",
                                                   "image": uri, "strength": 0})

    assert {"input_image", "strength"} <= set(schema)
    assert answer.status_code == 200, answer.text
    out = pixels(api, answer.json()["image_url"])
    assert np.abs(out - np.asarray(image).astype(np.int16)).max() <= TOLERANCE


def test_too_few_denoising_steps_are_refused_at_enqueue_and_nothing_is_queued(
        api: httpx.Client) -> None:
    uri = data_uri(Image.new("RGB", (64, 64), (10, 200, 10)))
    body = {"model": "tiny-sd", "prompt": "x", "input_image": uri, "strength": 0.4,
            "num_inference_steps": 2}  # int(2 x 0.4) = 0 steps
    before = api.get("/api/ai/generations", params={"page_size": 100}).json()["total_entries"]

    queued = api.post("/api/ai/queue", json=body)
    sync = api.post("/api/ai/images/generate", json=body)
    defaulted = api.post("/api/ai/queue", json={k: v for k, v in body.items() if k != "strength"}
                         | {"num_inference_steps": 1})

    for answer in (queued, sync):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["detail"] == (
            "strength x num_inference_steps must be at least 1 denoising step, not 0.4 x 2: "
            "raise num_inference_steps or strength")
    assert defaulted.status_code == 400 and "not 0.8 x 1" in defaulted.text  # strength's default
    assert api.get("/api/ai/generations", params={"page_size": 100}).json()["total_entries"] == before


def test_an_edit_model_takes_the_image_over_http_and_a_text_model_lists_none(
        api: httpx.Client, batching_server: ServerProcess) -> None:
    uri = data_uri(Image.new("RGB", (300, 200), (30, 160, 60)))
    kontext = api.get("/api/ai/models/tiny-kontext").json()["request_schema"]["properties"]

    answer = api.post("/api/ai/images/edit", json={"model": "tiny-kontext", "prompt": "add a hat",
                                                   "image": uri, "seed": 4})
    refused = api.post("/api/ai/images/edit", json={"model": "tiny-kontext", "prompt": "add a hat",
                                                    "image": uri, "strength": 0.5})

    assert "input_image" in kontext and "strength" not in kontext
    assert answer.status_code == 200, answer.text
    width, height = output_size("512", "3:2")  # aspect_ratio defaults to auto: the input's 3:2
    assert pixels(api, answer.json()["image_url"]).shape == (height, width, 3)
    info = engine_info(batching_server, answer.json()["generation_id"])
    assert info["pipeline"] == "FluxKontextPipeline"
    assert refused.status_code == 400 and "strength" in refused.json()["error"]["detail"]


def test_metrics_count_engine_calls_batch_sizes_outcomes_and_resident_models(
        api: httpx.Client, batching_server: ServerProcess) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{batching_server.url}/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = samples()
    ids = [g["generation_id"] for g in api.post("/api/ai/queue", json={
        "model": "tiny-sd", "prompt": "counted cats", "num_generations": 4}).json()["generations"]]
    for i in ids:
        wait_for_status(api, i, {"succeeded"})
    after = samples()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("imagehub_engine_requests_total", model="tiny-sd", outcome="ok") == 4
    assert grew("imagehub_engine_batch_images_sum", model="tiny-sd") == 4  # one call of 4 images
    assert grew("imagehub_engine_batch_images_count", model="tiny-sd") == 1
    assert grew("imagehub_engine_call_seconds_count", model="tiny-sd") == 1
    assert grew("imagehub_engine_call_seconds_sum", model="tiny-sd") > 0
    assert after[("imagehub_resident_models", (("device", "cpu"),))] >= 1
    assert after[("imagehub_resident_bytes", (("device", "cpu"),))] > 0
