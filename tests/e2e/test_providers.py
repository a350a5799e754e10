"""The real server with nano-banana-2 served by remote providers: fake Gemini first, fake fal.ai
second, both on loopback. The seed page's own cURL/jq/awk snippets, failover recorded on the row,
safety blocks, upstream errors, cancel reaching fal, input-image URLs and their SSRF refusals, and
the provider keys never leaving the process."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from engines.remote.fakes import KEY, FakeFal, FakeGemini, ImageHost
from seed import run_snippet, snippets
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess

NB2 = "gemini-3.1-flash-image"
MAX_RETRIES = 2
SNIPPETS = snippets()
"""The seed page's own snippets: ``sync``, ``poll``, ``sse`` and their ``_full`` variants that spell
out every field with its default (aspect_ratio, resolution, enable_web_search, safety_tolerance)."""


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    servers = {"gemini": FakeGemini().start(), "fal": FakeFal().start(), "images": ImageHost().start()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, Any]) -> Iterator[ServerProcess]:
    env = {
        "IMAGEHUB_GEMINI_API_KEY": KEY, "IMAGEHUB_GEMINI_BASE_URL": fakes["gemini"].url,
        "IMAGEHUB_FAL_API_KEY": KEY, "IMAGEHUB_FAL_BASE_URL": fakes["fal"].url,
        "IMAGEHUB_PROVIDER_MAX_RETRIES": str(MAX_RETRIES), "IMAGEHUB_PROVIDER_BACKOFF_SECONDS": "0.05",
        "IMAGEHUB_PROVIDER_POLL_SECONDS": "0.1", "IMAGEHUB_FETCH_ALLOW": "127.0.0.1/32",
        "IMAGEHUB_FETCH_MAX_BYTES": "100000", "IMAGEHUB_KEEPALIVE_SECONDS": "1",
    }
    proc = ServerProcess(tmp_path_factory.mktemp("providers"), env).start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def provenance(server: ServerProcess, generation_id: str) -> dict[str, Any]:
    """What the row recorded (read from the server's own database file)."""
    return server.stored_row(generation_id)["provenance"]


def enqueue(api: httpx.Client, **body: Any) -> str:
    r = api.post("/api/ai/queue", json={"model": "nano-banana-2", **body})
    assert r.status_code == 200, r.text
    return r.json()["generations"][0]["generation_id"]


def last_gemini_body(fakes: dict[str, Any]) -> dict[str, Any]:
    return fakes["gemini"].calls("POST", f"/v1beta/models/{NB2}:generateContent")[-1].body


# ---- the catalog -------------------------------------------------------------------------------

def test_nano_banana_models_are_listed_available(api: httpx.Client) -> None:
    by_id = {m["id"]: m for m in api.get("/api/ai/models").json()["data"]}
    banana = by_id["nano-banana-2"]
    assert banana["available"] is True and banana["unavailable_reason"] is None
    assert banana["backend"] == "gemini" and banana["developer"] == {"name": "Google"}
    props = banana["request_schema"]["properties"]
    assert {k: props[k].get("default") for k in ("aspect_ratio", "resolution", "enable_web_search",
                                                 "safety_tolerance")} == \
        {"aspect_ratio": "auto", "resolution": "2K", "enable_web_search": True, "safety_tolerance": "6"}
    assert set(props) == {"prompt", "aspect_ratio", "resolution", "enable_web_search", "safety_tolerance",
                          "google_search", "thinking_level", "input_image"}
    for other in ("nano-banana", "nano-banana-2-lite", "google-nano-banana-pro"):
        assert by_id[other]["available"] is True and "input_image" in by_id[other]["request_schema"]["properties"]
    gpt = by_id["gpt-image-1"]  # no OpenAI key here: listed, unavailable, saying what to set
    assert gpt["available"] is False and "IMAGEHUB_OPENAI_API_KEY" in gpt["unavailable_reason"]
    r = api.post("/api/ai/queue", json={"model": "gpt-image-1", "prompt": "x"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "model_unavailable"


# ---- the seed page's snippets, host and key changed only -----------------------------------------

@pytest.mark.parametrize("variant", ["plain", "seed fields"])
def test_sync_snippet(server: ServerProcess, fakes: dict[str, Any], variant: str) -> None:
    snippet = SNIPPETS["sync" if variant == "plain" else "sync_full"]
    body = json.loads(run_snippet(server, snippet, model="nano-banana-2"))
    assert body["model"] == "nano-banana-2" and body["image_url"] == body["images"][0]["url"]
    assert (body["images"][0]["width"], body["images"][0]["height"]) == (2048, 2048)
    sent = last_gemini_body(fakes)
    assert sent["contents"][0]["parts"] == [{"text": "<prompt>"}]
    assert sent["generationConfig"]["imageConfig"] == {"imageSize": "2K"}  # auto: no aspectRatio
    assert sent["tools"] == [{"google_search": {}}]
    assert {s["threshold"] for s in sent["safetySettings"]} == {"BLOCK_NONE"}
    image = httpx.get(body["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


@pytest.mark.parametrize("variant", ["plain", "seed fields"])
def test_poll_snippet(server: ServerProcess, variant: str) -> None:
    snippet = SNIPPETS["poll" if variant == "plain" else "poll_full"]
    out = run_snippet(server, snippet, model="nano-banana-2")
    statuses = [line.split(": ", 1)[1].strip() for line in out.splitlines() if line.startswith("Status:")]
    assert statuses[-1] == "succeeded"
    row = json.loads(out[out.index("{"):])
    assert row["model_name"] == "nano-banana-2" and row["result_url"].startswith(server.url)
    if variant == "seed fields":
        assert (row["aspect_ratio"], row["resolution"], row["enable_web_search"],
                row["safety_tolerance"]) == ("auto", "2K", True, "6")
    assert provenance(server, row["generation_id"])["engine"]["provider"] == "gemini"


@pytest.mark.parametrize("variant", ["plain", "seed fields"])
def test_sse_snippet(server: ServerProcess, variant: str) -> None:
    snippet = SNIPPETS["sse" if variant == "plain" else "sse_full"]
    payload = json.loads(run_snippet(server, snippet, model="nano-banana-2"))
    assert payload["status"] == "succeeded" and payload["model"] == "nano-banana-2"
    assert payload["url"].startswith(server.url)


def test_model_details_snippet(server: ServerProcess) -> None:
    model = json.loads(run_snippet(server, SNIPPETS["model"], model="nano-banana-2"))
    assert model["id"] == "nano-banana-2" and model["available"] is True
    assert model["json_request_schema"] == model["request_schema"]


# ---- failover, faults, safety ------------------------------------------------------------------

def test_failover_to_fal_is_recorded_on_the_row(api: httpx.Client, server: ServerProcess,
                                                fakes: dict[str, Any]) -> None:
    fakes["gemini"].fault("500", times=MAX_RETRIES + 1)
    generation_id = enqueue(api, prompt="a blue cube", aspect_ratio="16:9", resolution="1K")
    row = wait_for_status(api, generation_id, {"succeeded", "failed"})
    assert row["status"] == "succeeded", row
    recorded = provenance(server, generation_id)["engine"]
    assert recorded["provider"] == "fal" and recorded["provider_model"] == "fal-ai/nano-banana-2"
    assert recorded["failover"][0]["provider"] == "gemini" and "HTTP 500" in recorded["failover"][0]["error"]
    submit = fakes["fal"].calls("POST")[-1].body
    assert submit["prompt"] == "a blue cube" and submit["aspect_ratio"] == "16:9" and submit["resolution"] == "1K"
    image = httpx.get(row["result_url"])
    assert image.status_code == 200


def test_gemini_429_is_retried_and_still_served_by_gemini(api: httpx.Client, server: ServerProcess,
                                                          fakes: dict[str, Any]) -> None:
    fakes["gemini"].fault("429", times=1, retry_after=1)
    generation_id = enqueue(api, prompt="a green cube")
    assert wait_for_status(api, generation_id, {"succeeded", "failed"})["status"] == "succeeded"
    recorded = provenance(server, generation_id)["engine"]
    assert recorded["provider"] == "gemini" and recorded["http_requests"] == 2 and "failover" not in recorded


def test_safety_block_fails_the_row_and_says_so(api: httpx.Client, fakes: dict[str, Any]) -> None:
    fal_calls = len(fakes["fal"].log)
    generation_id = enqueue(api, prompt="a violent scene", safety_tolerance="2")
    row = wait_for_status(api, generation_id, {"succeeded", "failed"})
    assert row["status"] == "failed" and row["result_url"] is None
    assert row["error_message"] == ("blocked by the safety filter (SAFETY, HARM_CATEGORY_DANGEROUS_CONTENT) "
                                    "at tolerance 2 (provider gemini)")
    assert len(fakes["fal"].log) == fal_calls  # a refusal is not failed over
    # the sync endpoint answers the same refusal as a 502 with the message
    r = api.post("/api/ai/images/generate", json={"model": "nano-banana-2", "prompt": "a violent scene",
                                                  "safety_tolerance": "2"})
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream"
    assert "blocked by the safety filter" in r.json()["error"]["detail"]


def test_every_provider_failing_is_a_502_upstream(api: httpx.Client, fakes: dict[str, Any]) -> None:
    fakes["gemini"].fault("500", times=MAX_RETRIES + 1)
    fakes["fal"].fault("500", times=MAX_RETRIES + 1)
    r = api.post("/api/ai/images/generate", json={"model": "nano-banana-2", "prompt": "x"})
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["type"] == "upstream" and error["detail"].startswith("every provider failed: gemini: HTTP 500")
    assert "fal: HTTP 500" in error["detail"] and KEY not in r.text
    # the failed sync call is in the history, as a failed queued one is
    newest = api.get("/api/ai/generations", params={"page_size": 1}).json()["generations"][0]
    assert newest["status"] == "failed" and newest["error_message"] == error["detail"]
    assert newest["model_name"] == "nano-banana-2" and KEY not in str(newest)


def test_no_image_anywhere_fails_the_row(api: httpx.Client, fakes: dict[str, Any]) -> None:
    fakes["gemini"].fault("noimage")
    fakes["fal"].fault("noimage")
    row = wait_for_status(api, enqueue(api, prompt="a cube"), {"succeeded", "failed"})
    assert row["status"] == "failed" and "gemini returned no image" in row["error_message"]
    assert "fal returned no image" in row["error_message"]


def test_cancel_reaches_fal(api: httpx.Client, fakes: dict[str, Any]) -> None:
    fal = fakes["fal"]
    fakes["gemini"].fault("500", times=MAX_RETRIES + 1)
    fal.fault("hang")
    before = len(fal.calls("PUT"))
    generation_id = enqueue(api, prompt="a slow cube")
    deadline = time.monotonic() + 30
    while not any(job.hang and job.input.get("prompt") == "a slow cube" for job in fal.jobs.values()):
        assert time.monotonic() < deadline, "fal never got the job"
        time.sleep(0.05)
    assert api.delete(f"/api/ai/queue/{generation_id}").json() == {"status": "success",
                                                                    "generation_id": generation_id}
    while len(fal.calls("PUT")) == before:
        assert time.monotonic() < deadline, "the cancel never reached fal"
        time.sleep(0.05)
    [job] = [j for j in fal.jobs.values() if j.input.get("prompt") == "a slow cube"]
    assert job.cancelled
    assert api.get(f"/api/ai/queue/{generation_id}").json()["status"] == "cancelled"


# ---- input images by URL -------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/a.png",
    "https://192.168.1.20/a.png",
    "https://[::1]/a.png",
    "https://[fe80::1]/a.png",
    "http://0.0.0.0:8000/a.png",
    "ftp://example.com/a.png",
])
def test_ssrf_refusals_are_400_at_enqueue(api: httpx.Client, url: str) -> None:
    r = api.post("/api/ai/queue", json={"model": "nano-banana-2", "prompt": "edit", "input_image": [url]})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_params" and error["detail"].startswith(f"input_image: {url!r}")


def test_an_allowed_input_image_url_reaches_gemini(api: httpx.Client, fakes: dict[str, Any]) -> None:
    url = f"{fakes['images'].url}/ok.png"
    generation_id = enqueue(api, prompt="make it blue", input_image=[url])
    row = wait_for_status(api, generation_id, {"succeeded", "failed"})
    assert row["status"] == "succeeded" and row["input_image"] == [url]
    parts = last_gemini_body(fakes)["contents"][0]["parts"]
    assert parts[0] == {"text": "make it blue"} and parts[1]["inlineData"]["mimeType"] == "image/png"
    image = httpx.get(row["result_url"])
    assert image.status_code == 200


def test_input_image_limits_at_run_time(api: httpx.Client, fakes: dict[str, Any]) -> None:
    base = fakes["images"].url
    big = api.post("/api/ai/images/edit", json={"model": "nano-banana-2", "prompt": "x",
                                                "image": f"{base}/big.png"})
    assert big.status_code == 413 and big.json()["error"]["type"] == "payload_too_large"
    text = api.post("/api/ai/images/edit", json={"model": "nano-banana-2", "prompt": "x",
                                                 "image": f"{base}/text"})
    assert text.status_code == 400 and "is not an image" in text.json()["error"]["detail"]


# ---- the keys stay inside ----------------------------------------------------------------------

def test_provider_keys_never_leave_the_process(api: httpx.Client, server: ServerProcess) -> None:
    generation_id = enqueue(api, prompt="a last cube")
    wait_for_status(api, generation_id, {"succeeded", "failed"})
    assert KEY not in api.get("/api/ai/models").text
    assert KEY not in api.get("/api/ai/generations", params={"page_size": 1000}).text
    with sqlite3.connect(server.data_dir / "imagehub.db") as db:
        assert not db.execute("SELECT count(*) FROM generations WHERE provenance LIKE ? OR params LIKE ? "
                              "OR error_message LIKE ?", (f"%{KEY}%",) * 3).fetchone()[0]
    assert KEY not in (server.data_dir / "server.log").read_text()


# ---- an imagehub fronting another imagehub (the Oxen-hub passthrough) ------------------------------

@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, server: ServerProcess) -> Iterator[ServerProcess]:
    """A second imagehub with no provider of its own but the first one as its upstream hub."""
    env = {"IMAGEHUB_OXEN_API_KEY": server.key, "IMAGEHUB_OXEN_BASE_URL": server.url,
           "IMAGEHUB_PROVIDER_POLL_SECONDS": "0.1", "IMAGEHUB_PROVIDER_BACKOFF_SECONDS": "0.05"}
    proc = ServerProcess(tmp_path_factory.mktemp("front"), env).start()
    yield proc
    proc.stop()


def test_an_imagehub_fronts_another(front: ServerProcess, server: ServerProcess,
                                    fakes: dict[str, Any]) -> None:
    with front.client() as client:
        banana = client.get("/api/ai/models/nano-banana-2").json()
        assert banana["available"] is True
        r = client.post("/api/ai/images/generate", json={"model": "nano-banana-2", "prompt": "a fronted cube",
                                                         "aspect_ratio": "3:2", "resolution": "1K"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["image_url"].startswith(front.url) and body["images"][0]["width"] == 1248
    recorded = provenance(front, body["generation_id"])["engine"]
    assert recorded["provider"] == "oxen" and recorded["provider_model"] == "nano-banana-2"
    [upstream_id] = recorded["upstream_generation_ids"]
    with server.client() as upstream:
        row = upstream.get(f"/api/ai/queue/{upstream_id}").json()
    assert row["status"] == "succeeded" and row["aspect_ratio"] == "3:2" and row["prompt"] == "a fronted cube"
    assert provenance(server, upstream_id)["engine"]["provider"] == "gemini"
    assert last_gemini_body(fakes)["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2", "imageSize": "1K"}


def test_cancel_at_the_front_cancels_upstream(front: ServerProcess, server: ServerProcess,
                                              fakes: dict[str, Any]) -> None:
    fakes["gemini"].fault("timeout", seconds=20.0)
    with front.client() as client, server.client() as upstream:
        generation_id = enqueue(client, prompt="a fronted slow cube")
        deadline = time.monotonic() + 30
        while True:
            rows = upstream.get("/api/ai/queue", params={"status": "processing"}).json()["generations"]
            mine = [r for r in rows if r["prompt"] == "a fronted slow cube"]
            if mine:
                break
            assert time.monotonic() < deadline, "the upstream never started the job"
            time.sleep(0.05)
        assert client.delete(f"/api/ai/queue/{generation_id}").status_code == 200
        upstream_row = wait_for_status(upstream, mine[0]["generation_id"], {"cancelled", "succeeded", "failed"},
                                       timeout=15)
        assert upstream_row["status"] == "cancelled"
        assert client.get(f"/api/ai/queue/{generation_id}").json()["status"] == "cancelled"
