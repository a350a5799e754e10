"""Edge cases of bad input found by an audit against a real server: each was a 500 (or a wrong
200) and must answer API.md section 1's status and body, naming the field and the value, and
store nothing. Also HEAD, which must answer like GET without a body."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from image_bombs import BombHost, data_uri, png_declaring
from PIL import Image
from tests_helpers import wait_for_status

from imagehub.testing import ServerProcess, write_catalog

G, Q, EDIT = "/api/ai/images/generate", "/api/ai/queue", "/api/ai/images/edit"
OK = {"model": "tiny-sd", "prompt": "a red cube", "num_inference_steps": 1}
WITH_IMAGE = {**OK, "num_inference_steps": 2}
"""With an input image (strength 0.8 by default), 2 steps: one denoising step, so a request that
runs once its image is good (1 step would be refused for that first)."""
LIMIT = "over the limit of 50000000 pixels (IMAGEHUB_MAX_INPUT_PIXELS)"
BOMB = data_uri(png_declaring(20000, 20000))
JUNK = "data:image/png;base64," + base64.b64encode(b"hello, not an image").decode()


@pytest.fixture(scope="module")
def images() -> Iterator[BombHost]:
    host = BombHost().start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_sd_dir, images: BombHost) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """The tiny model, fetching input images from the loopback image host."""
    data_dir = tmp_path_factory.mktemp("hub")
    write_catalog(data_dir, tiny_sd_dir)
    proc = ServerProcess(data_dir, {"IMAGEHUB_FETCH_ALLOW": "127.0.0.1/32",
                                    "IMAGEHUB_KEEPALIVE_SECONDS": "1"}).start()
    yield proc
    proc.stop()


def _count_rows(api: httpx.Client) -> int:
    return api.get("/api/ai/generations", params={"page_size": 1}).json()["total_entries"]


def _assert_error(r: httpx.Response, status: int, type_: str, *words: str) -> str:
    assert r.status_code == status, r.text[:500]
    payload = r.json()
    assert payload["status"] == "error" and payload["error"]["type"] == type_
    for word in words:
        assert word in payload["error"]["detail"], (word, payload["error"]["detail"])
    return str(payload["error"]["detail"])


# ---- 1-3: input images -------------------------------------------------------------------------

@pytest.mark.parametrize("path,count", [(G, "n"), (Q, "num_generations"), (EDIT, "n")])
def test_a_decompression_bomb_is_413_naming_field_size_and_limit(api: httpx.Client, path: str,
                                                                 count: str) -> None:
    before = _count_rows(api)
    r = api.post(path, json={**WITH_IMAGE, "input_image": BOMB})
    _assert_error(r, 413, "payload_too_large", "input_image", "data:image/png;base64,", "400000000 pixels",
                  LIMIT)
    assert _count_rows(api) == before


def test_a_bomb_by_url_is_413_naming_field_url_size_and_limit(api: httpx.Client,
                                                              images: BombHost) -> None:
    url = f"{images.url}/bomb.png"
    before = _count_rows(api)
    r = api.post(EDIT, json={**WITH_IMAGE, "input_image": url})
    _assert_error(r, 413, "payload_too_large", f"input_image: {url!r}", "400000000 pixels", LIMIT)
    assert _count_rows(api) == before


def test_a_queued_bomb_by_url_fails_its_row_naming_the_size(api: httpx.Client,
                                                            images: BombHost) -> None:
    """A URL is only checked at enqueue; the fetch (and the decode) runs in the worker."""
    r = api.post(Q, json={**WITH_IMAGE, "input_image": f"{images.url}/bomb.png"})
    assert r.status_code == 200, r.text[:500]
    row = wait_for_status(api, r.json()["generations"][0]["generation_id"], {"failed", "succeeded"})
    assert row["status"] == "failed" and "400000000 pixels" in row["error_message"], row


def _truncated_png() -> str:
    """A PNG whose header is sound and whose pixel data stops halfway."""
    import io

    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buffer, format="PNG")
    return data_uri(buffer.getvalue()[:len(buffer.getvalue()) // 2])


@pytest.mark.parametrize("path", [G, Q])
def test_an_image_past_the_input_pixel_limit_is_413_even_for_a_model_that_cannot_run(
        api: httpx.Client, path: str) -> None:
    """8000x8000 is under Pillow's own limit and over ``IMAGEHUB_MAX_INPUT_PIXELS`` (50 M): read
    from the header, before the model's availability (nano-banana-2 has no provider key here)."""
    big = data_uri(png_declaring(8000, 8000))
    for model in ("tiny-sd", "nano-banana-2"):
        _assert_error(api.post(path, json={**WITH_IMAGE, "model": model, "input_image": big}
                               if model == "tiny-sd" else
                               {"model": model, "prompt": "x", "input_image": big}),
                      413, "payload_too_large", "8000x8000 (64000000 pixels)", LIMIT)


def test_an_image_is_decoded_only_for_a_model_that_can_run(api: httpx.Client) -> None:
    """A request for a model that cannot serve here is a 503 without its images decoded (a burst
    of large ones would cost memory for nothing); for one that can, a truncated image is 400."""
    truncated = _truncated_png()
    _assert_error(api.post(G, json={"model": "nano-banana-2", "prompt": "x", "input_image": truncated}),
                  503, "model_unavailable")
    _assert_error(api.post(G, json={**WITH_IMAGE, "input_image": truncated}), 400, "invalid_params",
                  f"input_image: {truncated[:40]!r}", "is not a readable image")


def test_an_undecodable_image_names_the_value_not_an_object(api: httpx.Client) -> None:
    r = api.post(G, json={**WITH_IMAGE, "input_image": JUNK})
    detail = _assert_error(r, 400, "invalid_params", f"input_image: {JUNK[:40]!r}",
                           "is not a readable image (not a PNG/JPEG")
    assert "BytesIO" not in detail and " at 0x" not in detail


@pytest.mark.parametrize("path", [G, Q])
def test_a_malformed_ipv6_url_is_400_naming_field_and_url(api: httpx.Client, path: str) -> None:
    url = "https://[::1/x.png"
    before = _count_rows(api)
    _assert_error(api.post(path, json={**WITH_IMAGE, "input_image": url}), 400, "invalid_params",
                  f"input_image: {url!r}")
    assert _count_rows(api) == before


# ---- 4: a page past what SQLite can count ------------------------------------------------------

@pytest.mark.parametrize("page", [10**6, 10**18, 10**30])
def test_a_page_past_every_row_is_an_empty_list(api: httpx.Client, page: int) -> None:
    r = api.get("/api/ai/generations", params={"page": page})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["generations"] == [] and body["count"] == 0 and body["page_number"] == page


# ---- 5: a Last-Event-ID no int() can hold ------------------------------------------------------

def _replayed_ids(server: ServerProcess, last_event_id: bytes, generation_id: str) -> list[str]:
    """The ids of the events a stream opened with ``last_event_id`` sends, up to the one that
    completes ``generation_id``."""
    headers = {"Authorization": f"Bearer {server.key}", "Last-Event-ID": last_event_id}
    ids: list[str] = []
    with httpx.Client(timeout=30) as client, \
            client.stream("GET", f"{server.url}/api/events", headers=headers) as r:
        assert r.status_code == 200, r.read()[:500]
        for line in r.iter_lines():
            ids += [line[4:]] if line.startswith("id: ") else []
            if line.startswith("data: ") and generation_id in line and '"succeeded"' in line:
                return ids
    raise AssertionError(f"the stream ended before {generation_id} completed: {ids}")


def test_a_last_event_id_of_5000_digits_replays_the_buffer_like_other_garbage(
        server: ServerProcess, api: httpx.Client) -> None:
    generation_id = api.post(Q, json=OK).json()["generations"][0]["generation_id"]
    wait_for_status(api, generation_id, {"succeeded"})
    garbage = _replayed_ids(server, b"nonsense", generation_id)
    boot = garbage[0].partition("-")[0].encode()
    for header in (boot + b"-" + b"9" * 5000, boot + b"-\xb2"):  # b"\xb2" is "²" in latin-1
        assert _replayed_ids(server, header, generation_id) == garbage, header[:30]


# ---- 6: workbench names the OS refuses, and a trailing slash ------------------------------------

@pytest.mark.parametrize("path", ["/workbench/" + "a" * 300, "/workbench/app.js/"])
def test_unknown_workbench_files_are_404(api: httpx.Client, path: str) -> None:
    _assert_error(api.get(path), 404, "resource_not_found", "workbench asset not found")


# ---- 7: HEAD -----------------------------------------------------------------------------------

def _assert_head_like_get(api: httpx.Client, url: str) -> None:
    get, head = api.get(url), api.head(url)
    assert get.status_code == 200 and head.status_code == 200, head.status_code
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_answers_like_get_on_a_file_and_the_models(api: httpx.Client) -> None:
    r = api.post(G, json=OK)
    assert r.status_code == 200, r.text[:500]
    _assert_head_like_get(api, r.json()["images"][0]["url"])
    _assert_head_like_get(api, "/api/ai/models")
    _assert_head_like_get(api, "/api/ai/models/tiny-sd")


def test_a_list_of_one_image_is_taken_by_a_model_that_takes_one(api: httpx.Client) -> None:
    """API.md types ``input_image`` "string or array of strings": a client written for a model
    that takes several sends a list of one; two are refused, naming the count."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    one = data_uri(buffer.getvalue())
    r = api.post(EDIT, json={**WITH_IMAGE, "input_image": [one], "strength": 0.0,
                             "response_format": "b64_json"})
    assert r.status_code == 200, r.text[:500]
    picture = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]["b64_json"])))
    assert picture.convert("RGB").getpixel((10, 10)) == (200, 30, 30)  # strength 0: the input
    _assert_error(api.post(EDIT, json={**WITH_IMAGE, "input_image": [one, one]}), 400,
                  "invalid_params", "input_image:", "is a list of 2; this model takes one")
