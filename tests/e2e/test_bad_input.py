"""Every kind of bad input answers API.md section 1's status and body, names the field and the
value, never 500, and changes no stored state."""

from __future__ import annotations

import httpx
import pytest

G, Q = "/api/ai/images/generate", "/api/ai/queue"
OK = {"model": "tiny-sd", "prompt": "a red cube"}

# (method, path, body or raw bytes, headers, status, type, words the detail must contain)
CASES = [
    ("POST", G, b"{not json", {}, 400, "invalid_params", ["body", "JSON"]),
    ("POST", G, b"", {}, 400, "invalid_params", ["body"]),
    ("POST", G, [1, 2], {}, 400, "invalid_params", ["body", "object"]),
    ("POST", G, {**OK, "colour": "red"}, {}, 400, "invalid_params", ["colour", "'red'"]),
    ("POST", G, {"prompt": "x"}, {}, 400, "invalid_params", ["model", "required"]),
    ("POST", G, {"model": "tiny-sd"}, {}, 400, "invalid_params", ["prompt", "required"]),
    ("POST", G, {**OK, "prompt": ""}, {}, 400, "invalid_params", ["prompt", "''"]),
    ("POST", G, {**OK, "prompt": "   "}, {}, 400, "invalid_params", ["prompt"]),
    ("POST", G, {**OK, "prompt": 5}, {}, 400, "invalid_params", ["prompt", "5", "string"]),
    ("POST", G, {**OK, "aspect_ratio": "7:3"}, {}, 400, "invalid_params", ["aspect_ratio", "'7:3'"]),
    ("POST", G, {**OK, "resolution": "8K"}, {}, 400, "invalid_params", ["resolution", "'8K'"]),
    ("POST", G, {**OK, "num_inference_steps": "many"}, {}, 400, "invalid_params",
     ["num_inference_steps", "'many'"]),
    ("POST", G, {**OK, "num_inference_steps": 0}, {}, 400, "invalid_params", ["num_inference_steps", "0"]),
    ("POST", G, {**OK, "n": 5}, {}, 400, "invalid_params", ["n", "5"]),
    ("POST", G, {**OK, "n": 0}, {}, 400, "invalid_params", ["n", "0"]),
    ("POST", G, {**OK, "n": True}, {}, 400, "invalid_params", ["n", "True"]),
    ("POST", G, {**OK, "response_format": "jpeg"}, {}, 400, "invalid_params", ["response_format", "'jpeg'"]),
    ("POST", G, {**OK, "seed": -1}, {}, 400, "invalid_params", ["seed", "-1"]),
    ("POST", G, {**OK, "model": "nope"}, {}, 404, "resource_not_found", ["Model not found: nope"]),
    ("POST", "/api/ai/images/edit", OK, {}, 400, "invalid_params", ["input_image"]),
    ("POST", Q, {**OK, "num_generations": 5}, {}, 400, "invalid_params", ["num_generations", "5"]),
    ("POST", Q, {**OK, "num_generations": "2"}, {}, 400, "invalid_params", ["num_generations", "'2'"]),
    ("POST", Q, {**OK, "aspect_ratio": "7:3"}, {}, 400, "invalid_params", ["aspect_ratio", "'7:3'"]),
    ("POST", Q, {**OK, "n": 2}, {}, 400, "invalid_params", ["n", "2"]),
    ("POST", Q, {**OK, "model": "nope"}, {}, 404, "resource_not_found", ["Model not found: nope"]),
    ("POST", Q, {**OK, "target_namespace": "someone-else"}, {}, 403, "forbidden",
     ["target_namespace", "'someone-else'"]),
    ("POST", Q, {**OK, "prompt": "x" * 30_000_000}, {}, 413, "payload_too_large", ["body", "bytes"]),
    ("GET", f"{Q}/00000000-0000-0000-0000-000000000000", None, {}, 404, "resource_not_found",
     ["00000000-0000-0000-0000-000000000000"]),
    ("DELETE", f"{Q}/not-a-generation", None, {}, 404, "resource_not_found", ["not-a-generation"]),
    ("GET", f"{Q}?status=done", None, {}, 400, "invalid_params", ["status", "'done'"]),
    ("GET", "/api/ai/generations?page=0", None, {}, 400, "invalid_params", ["page", "0"]),
    ("GET", "/api/ai/generations?page_size=1001", None, {}, 400, "invalid_params", ["page_size", "1001"]),
    ("GET", "/api/ai/models?modalities=video", None, {}, 400, "invalid_params", ["modalities", "'video'"]),
    ("GET", "/api/ai/models/nope", None, {}, 404, "resource_not_found", ["Model not found: nope"]),
    ("GET", "/api/ai/models", None, {"Authorization": ""}, 401, "unauthenticated", ["Authorization"]),
    ("GET", "/api/ai/models", None, {"Authorization": "Token abc"}, 401, "unauthenticated", ["Bearer"]),
    ("GET", "/api/ai/models", None, {"Authorization": "Bearer ih_wrong"}, 401, "unauthenticated", ["unknown"]),
    ("POST", Q, OK, {"Authorization": "Bearer ih_wrong"}, 401, "unauthenticated", ["unknown"]),
    ("GET", "/api/events", None, {"Authorization": "Bearer nope"}, 401, "unauthenticated", ["unknown"]),
]


def _count_rows(api: httpx.Client) -> int:
    return api.get("/api/ai/generations", params={"page_size": 1}).json()["total_entries"]


@pytest.mark.parametrize("method,path,body,headers,status,type_,words", CASES,
                         ids=[f"{c[0]} {c[1][:30]} {str(c[2])[:40]}" for c in CASES])
def test_bad_input(api: httpx.Client, method, path, body, headers, status, type_, words) -> None:  # type: ignore[no-untyped-def]
    before = _count_rows(api)
    kwargs = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
    sent = {k: v for k, v in api.headers.items() if not (headers and k.lower() == "authorization")}
    r = api.request(method, path, headers={**sent, **headers}, **kwargs)
    assert r.status_code == status, r.text[:500]
    payload = r.json()
    assert payload["status"] == "error" and payload["status_message"] == type_
    assert payload["error"]["type"] == type_ and payload["error"]["title"]
    for word in words:
        assert word in payload["error"]["detail"], (word, payload["error"]["detail"])
    assert r.headers["x-request-id"]
    assert _count_rows(api) == before  # nothing stored


def test_rate_limit_answers_429_with_retry_after(tmp_path, tiny_sd_dir) -> None:  # type: ignore[no-untyped-def]
    from conftest import ServerProcess, write_catalog

    write_catalog(tmp_path, tiny_sd_dir)
    server = ServerProcess(tmp_path, {"IMAGEHUB_RATE_LIMIT_PER_MINUTE": "3"}).start()
    try:
        with server.client() as client:
            codes = [client.get("/api/ai/models").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = client.get("/api/ai/models")
            assert r.json()["error"]["type"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    finally:
        server.stop()
