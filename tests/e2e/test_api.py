"""The API of ../shared/API.md sections 1–5 and 7 against the real server on loopback."""

from __future__ import annotations

import io
import time

import httpx
from PIL import Image
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess


def test_sync_generate_returns_signed_image_urls(api: httpx.Client) -> None:
    r = api.post("/api/ai/images/generate",
                 json={"model": "tiny-sd", "prompt": "a red cube", "aspect_ratio": "16:9", "seed": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-sd" and isinstance(body["created"], int)
    (image,) = body["images"]
    assert (image["width"], image["height"]) == (688, 384)  # 512-base 16:9 (API.md section 6)
    assert body["image_url"] == image["url"]
    assert r.headers["x-request-id"]
    # the URL opens without the key, is a real PNG of the reported size, with caching headers
    png = httpx.get(image["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (688, 384)
    assert png.headers["etag"] and "max-age" in png.headers["cache-control"]
    again = httpx.get(image["url"], headers={"If-None-Match": png.headers["etag"]})
    assert again.status_code == 304


def test_same_seed_same_pixels_b64(api: httpx.Client) -> None:
    req = {"model": "tiny-sd", "prompt": "a blue ball", "seed": 42, "response_format": "b64_json", "n": 2}
    first, second = (api.post("/api/ai/images/generate", json=req).json() for _ in range(2))
    assert [i["b64_json"] for i in first["images"]] == [i["b64_json"] for i in second["images"]]
    assert first["images"][0]["b64_json"] != first["images"][1]["b64_json"]  # n images differ
    assert "url" not in first["images"][0]


def test_tampered_file_url_is_refused(api: httpx.Client) -> None:
    url = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "x"}).json()["image_url"]
    token_start = url.index("/api/files/") + len("/api/files/")
    forged = url[:token_start] + "A" + url[token_start + 1:]
    r = httpx.get(forged)
    assert r.status_code == 404 and r.json()["error"]["type"] == "resource_not_found"


def test_queue_lifecycle_row_and_history(api: httpx.Client) -> None:
    r = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "a red cube",
                                        "aspect_ratio": "1:1", "num_generations": 2})
    assert r.status_code == 200, r.text
    gens = r.json()["generations"]
    assert len(gens) == 2 and all(g["status"] == "queued" for g in gens)
    rows = [wait_for_status(api, g["generation_id"], {"succeeded"}) for g in gens]
    row = rows[0]
    for field in ("generation_id", "model_name", "prompt", "media_type", "status", "result_url",
                  "error_message", "enqueued_at", "started_at", "completed_at"):
        assert field in row
    assert row["model_name"] == "tiny-sd" and row["media_type"] == "image"
    assert row["aspect_ratio"] == "1:1"  # carried params echo at top level
    assert row["num_generations"] == 2  # the generic ones too
    assert row["error_message"] is None
    assert row["enqueued_at"] <= row["started_at"] <= row["completed_at"]
    assert httpx.get(row["result_url"]).status_code == 200
    history = api.get("/api/ai/generations", params={"page_size": 1, "status": "succeeded"}).json()
    assert history["page_size"] == 1 and history["count"] == 1 and history["page_number"] == 1
    assert history["total_entries"] >= 2 and history["total_pages"] == history["total_entries"]
    # finished rows leave the default queue listing
    active = api.get("/api/ai/queue").json()
    assert all(g["status"] in ("queued", "processing") for g in active["generations"])
    assert active["count"] == len(active["generations"])


def test_rows_echo_every_param_the_request_carried_and_only_those(api: httpx.Client) -> None:
    """API.md section 3: the generic fields as well as the model's; what was not carried is not
    made up (the seed is the extension: the seed used)."""
    queued = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "a red cube",
                                             "target_namespace": "default"}).json()
    row = wait_for_status(api, queued["generations"][0]["generation_id"], {"succeeded"})
    assert row["target_namespace"] == "default" and "num_generations" not in row
    sync = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "a red cube",
                                                     "n": 2, "response_format": "b64_json",
                                                     "seed": 3}).json()
    row = api.get(f"/api/ai/queue/{sync['generation_id']}").json()
    assert (row["n"], row["response_format"], row["seed"]) == (2, "b64_json", 3)
    assert "target_namespace" not in row and "num_generations" not in row
    plain = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "x"}).json()
    row = api.get(f"/api/ai/queue/{plain['generation_id']}").json()
    assert not {"n", "response_format", "target_namespace"} & row.keys()


def test_idempotency_key_returns_same_generations(api: httpx.Client) -> None:
    body = {"model": "tiny-sd", "prompt": "same", "num_generations": 2}
    headers = {"Idempotency-Key": f"k-{time.time()}"}
    first = api.post("/api/ai/queue", json=body, headers=headers).json()["generations"]
    second = api.post("/api/ai/queue", json=body, headers=headers).json()["generations"]
    assert [g["generation_id"] for g in first] == [g["generation_id"] for g in second]


def test_cancel_queued_then_409(api: httpx.Client) -> None:
    ids = [g["generation_id"] for g in api.post(
        "/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "slow", "num_generations": 3}
    ).json()["generations"]]
    last = ids[-1]
    r = api.delete(f"/api/ai/queue/{last}")
    assert r.status_code == 200 and r.json() == {"status": "success", "generation_id": last}
    assert api.get(f"/api/ai/queue/{last}").json()["status"] == "cancelled"
    again = api.delete(f"/api/ai/queue/{last}")
    assert again.status_code == 409 and again.json()["error"]["type"] == "invalid_state"
    for other in ids[:-1]:
        api.delete(f"/api/ai/queue/{other}")


def test_namespaces_are_isolated(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    other_key = server.cli("keys", "create", "--namespace", "acme").stdout.strip()
    gen = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "mine"}).json()
    gen_id = gen["generations"][0]["generation_id"]
    with server.client(other_key) as other:
        assert other.get(f"/api/ai/queue/{gen_id}").status_code == 403
        assert other.delete(f"/api/ai/queue/{gen_id}").status_code == 403
        listed = other.get("/api/ai/generations").json()
        assert gen_id not in [g["generation_id"] for g in listed["generations"]]
        r = other.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "x",
                                              "target_namespace": "default"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"


def test_revoked_key_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    key = server.cli("keys", "create", "--name", "to-revoke").stdout.strip()
    with server.client(key) as client:
        assert client.get("/api/ai/models").status_code == 200
        server.cli("keys", "revoke", key[:10])
        r = client.get("/api/ai/models")
        assert r.status_code == 401 and "revoked" in r.json()["error"]["detail"]


def test_models_catalog(api: httpx.Client) -> None:
    data = api.get("/api/ai/models").json()
    assert data["object"] == "list"
    by_id = {m["id"]: m for m in data["data"]}
    tiny = by_id["tiny-sd"]
    assert tiny["available"] is True and tiny["backend"] == "diffusers"
    assert tiny["request_schema"] == tiny["json_request_schema"]
    assert tiny["request_schema"]["properties"]["num_inference_steps"]["default"] == 2
    assert "negative_prompt" in tiny["request_schema"]["properties"]
    banana = by_id["nano-banana-2"]
    assert banana["available"] is False and "IMAGEHUB_GEMINI_API_KEY" in banana["unavailable_reason"]
    assert banana["request_schema"]["properties"]["safety_tolerance"]["default"] == "6"
    one = api.get("/api/ai/models/tiny-sd").json()
    assert one["id"] == "tiny-sd" and one["object"] == "model"
    missing = api.get("/api/ai/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["detail"] == "Model not found: nope"
    t2i = api.get("/api/ai/models", params={"modalities": "image-to-image"}).json()["data"]
    # SD takes input_image (image-to-image from the same components); the built-in model does not
    assert "imagehub-tiny" not in [m["id"] for m in t2i] and "nano-banana-2" in [m["id"] for m in t2i]
    assert "tiny-sd" in [m["id"] for m in t2i]


def test_unavailable_model_answers_503(api: httpx.Client) -> None:
    r = api.post("/api/ai/images/generate", json={"model": "nano-banana-2", "prompt": "x"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "model_unavailable"
    assert "IMAGEHUB_GEMINI_API_KEY" in r.json()["error"]["detail"]


def test_row_records_what_reproduces_it(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    gen_id = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "repro"}).json()[
        "generations"][0]["generation_id"]
    wait_for_status(api, gen_id, {"succeeded"})
    row = server.stored_row(gen_id)
    resolved, prov = row["resolved"], row["provenance"]
    assert isinstance(resolved["seed"], int) and resolved["num_inference_steps"] == 2
    assert prov["model"] == "tiny-sd" and len(prov["weights_fingerprint"]) >= 12
    assert prov["versions"]["imagehub"] and prov["versions"]["diffusers"] and prov["versions"]["torch"]


def test_an_idle_keep_alive_connection_outlives_a_five_second_poll(server) -> None:  # type: ignore[no-untyped-def]
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        time.sleep(6)  # a client polling every 5 s; uvicorn's default closed idle ones at 5 s
        connection.request("GET", "/healthz")  # same socket: RemoteDisconnected if it was closed
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()
    assert first.status == second.status == 200


def test_unbatched_sync_and_queued_runs_are_counted_in_metrics(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    def ok_count() -> float:
        line = next((line for line in httpx.get(f"{server.url}/metrics").text.splitlines()
                     if line.startswith('imagehub_engine_requests_total{model="tiny-sd",outcome="ok"}')),
                    None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    before = ok_count()
    assert api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "m"}).status_code == 200
    queued = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "m"}).json()
    wait_for_status(api, queued["generations"][0]["generation_id"], {"succeeded"})

    assert ok_count() - before == 2


def test_health_ready_metrics_openapi_llms(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["store"] == "ok"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "imagehub_http_requests_total" in metrics and "imagehub_queue_depth" in metrics
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/ai/queue/{generation_id}" in spec["paths"] and "/api/events" in spec["paths"]
    edits = spec["paths"]["/api/ai/images/edits"]["post"]["requestBody"]["content"]
    assert edits["multipart/form-data"]["schema"]["required"] == ["model", "prompt", "image"]
    llms = httpx.get(f"{server.url}/llms.txt")
    assert llms.status_code == 200 and llms.text.startswith("# imagehub")
    links = [line.split("](")[1].split(")")[0] for line in llms.text.splitlines() if "](" in line]
    assert links
    for link in links:
        page = httpx.get(link)
        assert page.status_code == 200 and page.text.startswith("# "), link


def test_a_model_without_its_provider_names_a_bad_field_before_503(api: httpx.Client) -> None:
    """A remote model's fields are known without its provider's key: a bad request hears 400
    naming the field (so it can be fixed while the key is being set), a good one 503; nothing is
    stored either way."""
    before = api.get("/api/ai/generations").json()["total_entries"]
    for path in ("/api/ai/images/generate", "/api/ai/queue"):
        for body, words in (({"prompt": ""}, ["prompt", "''"]),
                            ({"prompt": "x", "aspect_ratio": "7:3"}, ["aspect_ratio", "'7:3'"]),
                            ({"prompt": "x", "colour": 1}, ["colour"])):
            r = api.post(path, json={"model": "nano-banana-2", **body})
            assert r.status_code == 400, (path, body, r.text)
            assert all(w in r.json()["error"]["detail"] for w in words), r.text
        r = api.post(path, json={"model": "nano-banana-2", "prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "model_unavailable"
    assert api.get("/api/ai/generations").json()["total_entries"] == before


def test_editing_with_a_text_to_image_model_says_it_takes_no_image(api: httpx.Client) -> None:
    for body in ({"model": "imagehub-tiny", "prompt": "x"},
                 {"model": "imagehub-tiny", "prompt": "x", "input_image": "https://a.example/x.png"}):
        r = api.post("/api/ai/images/edit", json=body)
        assert r.status_code == 400
        assert r.json()["error"]["detail"] == (
            "model: 'imagehub-tiny' takes no input image (a text-to-image model); "
            "POST /api/ai/images/generate runs it")


def test_queue_list_takes_a_limit_newest_first(api: httpx.Client) -> None:
    ids = [g["generation_id"] for g in api.post("/api/ai/queue", json={
        "model": "tiny-sd-slow", "prompt": "limit", "num_generations": 3}).json()["generations"]]
    try:
        active = api.get("/api/ai/queue", params={"model": "tiny-sd-slow"}).json()["generations"]
        assert [g["generation_id"] for g in active][:3] == ids[::-1]  # newest first
        two = api.get("/api/ai/queue", params={"model": "tiny-sd-slow", "limit": 2}).json()
        assert two["count"] == 2 and [g["generation_id"] for g in two["generations"]] == ids[:0:-1]
        bad = api.get("/api/ai/queue", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.json()["error"]["detail"]
    finally:
        for generation_id in ids:
            api.delete(f"/api/ai/queue/{generation_id}")


def test_a_write_locked_out_past_the_busy_timeout_is_a_503_that_writes_nothing(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Another process keeps SQLite's write lock past ``DB_BUSY_TIMEOUT_SECONDS``: enqueue and
    sync generate answer 503 ``busy`` with ``Retry-After``, leave no row and no file, and the same
    requests succeed once the lock is gone."""
    import sqlite3

    server = ServerProcess(tmp_path / "data", {"IMAGEHUB_DB_BUSY_TIMEOUT_SECONDS": "0.5"}).start()
    try:
        with server.client() as api:
            body = {"model": "imagehub-tiny", "prompt": "a red circle", "resolution": "512"}
            holder = sqlite3.connect(server.data_dir / "imagehub.db", timeout=1)
            holder.execute("BEGIN IMMEDIATE")
            try:
                locked = [api.post("/api/ai/queue", json=body),
                          api.post("/api/ai/images/generate", json=body)]
            finally:
                holder.rollback()
                holder.close()
            for answer in locked:
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["type"] == "busy"
                assert "IMAGEHUB_DB_BUSY_TIMEOUT_SECONDS" in answer.json()["error"]["detail"]
                assert answer.headers["retry-after"] == "1"
            with sqlite3.connect(server.data_dir / "imagehub.db") as db:
                assert db.execute("SELECT count(*) FROM generations").fetchone() == (0,)
            assert not [p for p in (server.data_dir).rglob("*.png")]
            assert api.post("/api/ai/queue", json=body).status_code == 200
            assert api.post("/api/ai/images/generate", json=body).status_code == 200
    finally:
        server.stop()


def test_status_filter_repeated_means_any_of_them(api: httpx.Client) -> None:
    ended = api.get("/api/ai/generations", params=[("status", "succeeded"), ("status", "failed"),
                                                   ("page_size", 1000)]).json()
    succeeded = api.get("/api/ai/generations", params={"status": "succeeded"}).json()
    failed = api.get("/api/ai/generations", params={"status": "failed"}).json()
    assert ended["total_entries"] == succeeded["total_entries"] + failed["total_entries"] > 0
    assert {g["status"] for g in ended["generations"]} <= {"succeeded", "failed"}
    bad = api.get("/api/ai/queue", params=[("status", "queued"), ("status", "bogus")])
    assert bad.status_code == 400 and bad.json()["error"]["detail"].startswith(
        "status: 'bogus' is not one of ['queued', ")


def test_media_type_filter_takes_oxens_kinds_and_names_a_misspelt_one(api: httpx.Client) -> None:
    images = api.get("/api/ai/generations", params={"media_type": "image"}).json()
    assert images["total_entries"] > 0
    assert {g["media_type"] for g in images["generations"]} == {"image"}
    assert api.get("/api/ai/queue", params={"media_type": "video"}).json()["count"] == 0
    for path in ("/api/ai/queue", "/api/ai/generations"):
        bad = api.get(path, params={"media_type": "imgae"})
        assert bad.status_code == 400
        assert bad.json()["error"]["detail"] == "media_type: 'imgae' is not one of ['image', 'video']"


def test_a_write_waiting_for_a_locked_database_stalls_no_other_request(
        server: ServerProcess, api: httpx.Client) -> None:
    """Another process holds SQLite's write lock (a second imagehub, a sqlite3 shell): the
    enqueue waits for it in a thread, and the event loop goes on answering."""
    import sqlite3
    import threading

    holder = sqlite3.connect(server.data_dir / "imagehub.db", timeout=1)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held until the commit below
    answers: dict[str, httpx.Response] = {}
    enqueue = threading.Thread(target=lambda: answers.update(enqueue=api.post(
        "/api/ai/queue", json={"model": "tiny-sd", "prompt": "after the lock"})))
    try:
        enqueue.start()
        time.sleep(0.3)  # the enqueue is waiting for the lock now
        with server.client() as other:
            answers["health"] = other.get("/healthz")
            answers["models"] = other.get("/api/ai/models")
        waiting_while_answered = enqueue.is_alive()
    finally:
        holder.commit()
        holder.close()
    enqueue.join(30)

    assert answers["health"].status_code == 200 and answers["models"].status_code == 200
    assert waiting_while_answered  # both answered while the enqueue still waited for the lock
    assert answers["enqueue"].status_code == 200, answers["enqueue"].text


def test_a_namespace_past_its_queue_limit_is_429_and_a_retry_of_an_earlier_request_is_not(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``MAX_QUEUED_PER_NAMESPACE`` counts queued and processing rows (no workers here: they stay
    queued); a request that would pass it queues nothing."""
    server = ServerProcess(tmp_path / "data", {"IMAGEHUB_MAX_QUEUED_PER_NAMESPACE": "3",
                                               "IMAGEHUB_RUN_WORKERS": "false"}).start()
    body = {"model": "imagehub-tiny", "prompt": "a red circle"}
    try:
        with server.client() as api:
            first = api.post("/api/ai/queue", json={**body, "num_generations": 2},
                             headers={"Idempotency-Key": "first"})
            assert first.status_code == 200, first.text
            full = api.post("/api/ai/queue", json={**body, "num_generations": 2})
            assert full.status_code == 429 and full.headers["retry-after"] == "5"
            assert full.json()["error"]["detail"] == (
                "namespace 'default' has 2 generations queued or processing; 2 more would pass "
                "the limit of 3 (IMAGEHUB_MAX_QUEUED_PER_NAMESPACE)")
            assert api.get("/api/ai/queue").json()["count"] == 2
            assert api.post("/api/ai/queue", json=body).status_code == 200
            again = api.post("/api/ai/queue", json={**body, "num_generations": 2},
                             headers={"Idempotency-Key": "first"})
            assert again.status_code == 200 and again.json() == first.json()
            assert api.post("/api/ai/queue", json=body).status_code == 429
            api.delete(f"/api/ai/queue/{first.json()['generations'][0]['generation_id']}")
            assert api.post("/api/ai/queue", json=body).status_code == 200  # room again
    finally:
        server.stop()
