"""What a request means, against the real server: a reused ``Idempotency-Key``, seeds derived for
``num_generations``, an edit without images, and the OpenAI route's ``model`` (API.md 1–3, 7)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tests_helpers import wait_for_status

from imagehub.protocol import GENERIC_FIELDS_SCHEMA
from imagehub.testing import ServerProcess

Q = "/api/ai/queue"
OK = {"model": "tiny-sd", "prompt": "a red cube"}
SEED_MAX = GENERIC_FIELDS_SCHEMA["properties"]["seed"]["maximum"]


def _count_rows(api: httpx.Client) -> int:
    return api.get("/api/ai/generations", params={"page_size": 1}).json()["total_entries"]


def _enqueue(api: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return api.post(Q, json=body, headers={"Idempotency-Key": key} if key else None)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [g["generation_id"] for g in response.json()["generations"]]


def _assert_invalid(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["status_message"] == "invalid_params" == payload["error"]["type"]
    detail = payload["error"]["detail"]
    for word in words:
        assert word in detail, (word, detail)
    return detail


# ---- 1. Idempotency-Key ---------------------------------------------------------------------------

def test_retry_with_the_same_key_and_request_returns_the_same_generations(api: httpx.Client) -> None:
    key, body = f"retry-{uuid.uuid4()}", {**OK, "num_generations": 2, "seed": 3}
    first = _ids(_enqueue(api, body, key))
    before = _count_rows(api)
    assert _ids(_enqueue(api, dict(reversed(body.items())), key)) == first  # field order is no change
    assert _count_rows(api) == before


def _race_retries(api: httpx.Client, fronts: list[tuple[str, str]]) -> None:
    """12 retries of one request under one Idempotency-Key, sent at once to ``fronts`` (base URL,
    key) in turn; 5 trials: each queues the request once, and every retry answers its rows."""
    for _ in range(5):  # races: each trial a chance to interleave
        key, body = f"race-{uuid.uuid4()}", {**OK, "num_generations": 2, "seed": 5}
        before = _count_rows(api)
        start = threading.Barrier(12)

        def send(n: int, key: str = key, body: dict[str, Any] = body,
                 start: threading.Barrier = start) -> list[str]:
            url, api_key = fronts[n % len(fronts)]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}) as client:
                start.wait(10)
                return _ids(_enqueue(client, body, key))

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))

        assert all(ids == answers[0] for ids in answers), answers
        assert _count_rows(api) == before + 2


def test_the_same_key_sent_at_once_from_many_clients_queues_one_request(
        server: ServerProcess, api: httpx.Client) -> None:
    """Retries that race (a client's timeout and its retry, two workers of one job) share the rows
    of whichever came first; none queues a second copy."""
    _race_retries(api, [(server.url, server.key)])


def test_the_same_key_sent_at_once_to_two_processes_on_one_database_queues_one_request(
        server: ServerProcess, api: httpx.Client) -> None:
    """An API-only node beside the server, on its data dir: the key's row in the database lets
    one request in, whichever process it reaches."""
    node = ServerProcess(server.data_dir, {"IMAGEHUB_RUN_WORKERS": "false"}).start()
    try:
        _race_retries(api, [(server.url, server.key), (node.url, node.key)])
    finally:
        node.stop()


@pytest.mark.parametrize("change,field", [
    ({"prompt": "a blue ball"}, "prompt"),
    ({"num_generations": 2}, "num_generations"),
    ({"model": "tiny-sd-slow"}, "model"),
    ({"aspect_ratio": "16:9"}, "aspect_ratio"),
    ({"seed": 8}, "seed"),
])
def test_same_key_with_a_different_request_is_refused(api: httpx.Client, change: dict[str, Any],
                                                      field: str) -> None:
    key = f"reuse-{uuid.uuid4()}"
    first = _ids(_enqueue(api, {**OK, "seed": 7}, key))
    before = _count_rows(api)
    detail = _assert_invalid(_enqueue(api, {**OK, "seed": 7, **change}, key),
                             "Idempotency-Key", repr(key), "different request", field)
    assert "'a red cube'" in detail or field != "prompt"  # the first value is named too
    assert "seed: 7 then (the seed used then: sent, or chosen when none was), 8 now" in detail \
        or field != "seed"
    assert _count_rows(api) == before  # nothing queued, the first request's rows untouched
    assert _ids(_enqueue(api, {**OK, "seed": 7}, key)) == first


# ---- 2. derived seeds stay in range ---------------------------------------------------------------

def test_seeds_counted_up_from_the_maximum_wrap_to_zero(api: httpx.Client) -> None:
    _assert_invalid(_enqueue(api, {**OK, "seed": SEED_MAX + 1}), "seed", str(SEED_MAX + 1))
    ids = _ids(_enqueue(api, {**OK, "seed": SEED_MAX, "num_generations": 2}))
    rows = [wait_for_status(api, i, {"succeeded"}) for i in ids]
    assert [row["seed"] for row in rows] == [SEED_MAX, 0]
    for row in rows:  # every stored seed is one the API takes back
        _ids(_enqueue(api, {**OK, "seed": row["seed"]}))


# ---- 3. an edit needs an image --------------------------------------------------------------------

@pytest.mark.parametrize("field", ["input_image", "image"])
def test_edit_with_an_empty_image_list_is_refused(api: httpx.Client, field: str) -> None:
    before = _count_rows(api)
    body = {"model": "nano-banana-2", "prompt": "add a hat", field: []}
    _assert_invalid(api.post("/api/ai/images/edit", json=body), "input_image", "[]", "at least one")
    assert _count_rows(api) == before


# ---- 4. the OpenAI route checks model first -------------------------------------------------------

@pytest.mark.parametrize("model,words", [
    (5, ["model: 5", "'string'"]),
    (None, ["model: null", "'string'"]),
    ("", ["model: ''"]),
    (..., ["model", "required"]),
])
def test_openai_route_names_a_bad_model(api: httpx.Client, model: Any, words: list[str]) -> None:
    body = {"prompt": "x", "size": "512x512"} | ({} if model is ... else {"model": model})
    detail = _assert_invalid(api.post("/api/ai/images/generations", json=body), *words)
    assert "size" not in detail


# ---- 5. input images are kept once, in storage --------------------------------------------------

def _png_uri(colour: tuple[int, int, int]) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_an_input_image_is_stored_once_not_in_every_row(server: ServerProcess,
                                                         api: httpx.Client) -> None:
    """Four generations of one image: the image is one file; the rows hold a reference and the
    URI's short form; each row still runs from it (strength 0 gives the input back) and echoes
    the short form as before."""
    import base64
    import hashlib
    import io

    from PIL import Image

    red = _png_uri((200, 30, 30))
    body = {**OK, "input_image": red, "strength": 0.0, "num_inference_steps": 2,
            "num_generations": 4}
    ids = _ids(_enqueue(api, body, key := f"image-{uuid.uuid4()}"))
    digest = hashlib.sha256(base64.b64decode(red.split(",", 1)[1])).hexdigest()
    assert (server.data_dir / "files" / "inputs" / digest).read_bytes() == \
        base64.b64decode(red.split(",", 1)[1])
    for generation_id in ids:
        stored = server.stored_row(generation_id)
        assert stored["resolved"]["input_image"] == f"imagehub-input:{digest}"
        assert stored["params"]["input_image"] == \
            f"data:image/png;base64,...({len(red)} chars)#sha256={digest}"
        row = wait_for_status(api, generation_id, {"succeeded", "failed"})
        assert row["status"] == "succeeded", row
        assert row["input_image"] == f"data:image/png;base64,...({len(red)} chars)"
        picture = Image.open(io.BytesIO(httpx.get(row["images"][0]["url"]).content))
        assert picture.convert("RGB").getpixel((5, 5)) == (200, 30, 30)
    # a retry is the same request; another image of the same length is not
    assert _ids(_enqueue(api, body, key)) == ids
    blue = _png_uri((30, 30, 200))
    assert len(blue) == len(red)
    _assert_invalid(_enqueue(api, {**body, "input_image": blue}, key), "different request",
                    "input_image")
