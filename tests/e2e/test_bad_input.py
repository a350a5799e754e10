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
    ("POST", G, [1, 2], {}, 400, "invalid_params", ["body", "object", "got an array"]),
    ("POST", G, b"null", {}, 400, "invalid_params", ["body: expected a JSON object, got null"]),
    ("POST", G, {**OK, "seed": True}, {}, 400, "invalid_params",
     ["seed: true is not of type 'integer'"]),
    ("POST", Q, {**OK, "num_generations": None}, {}, 400, "invalid_params",
     ["num_generations: null is not of type 'integer'"]),
    ("POST", G, {**OK, "colour": "red"}, {}, 400, "invalid_params", ["colour", "'red'"]),
    ("POST", G, {"prompt": "x"}, {}, 400, "invalid_params", ["model", "required"]),
    ("POST", G, {"model": "tiny-sd"}, {}, 400, "invalid_params", ["prompt", "required"]),
    ("POST", G, {**OK, "prompt": ""}, {}, 400, "invalid_params", ["prompt", "''"]),
    ("POST", G, {**OK, "prompt": "   "}, {}, 400, "invalid_params", ["prompt"]),
    ("POST", G, {**OK, "prompt": "\u200b\u2060"}, {}, 400, "invalid_params",
     ["prompt", "\\u200b", "must not be empty"]),
    ("POST", Q, {**OK, "prompt": " \ufeff\u200d "}, {}, 400, "invalid_params", ["prompt", "empty"]),
    ("POST", G, {**OK, "prompt": 5}, {}, 400, "invalid_params", ["prompt", "5", "string"]),
    ("POST", Q, {**OK, "prompt": "a" * 32_001}, {}, 400, "invalid_params",
     ["prompt: '" + "a" * 80 + "'... (32001 characters) is longer than 32000 characters"]),
    ("POST", G, {**OK, "aspect_ratio": "7:3"}, {}, 400, "invalid_params", ["aspect_ratio", "'7:3'"]),
    ("POST", G, {**OK, "resolution": "8K"}, {}, 400, "invalid_params", ["resolution", "'8K'"]),
    ("POST", G, {**OK, "num_inference_steps": "many"}, {}, 400, "invalid_params",
     ["num_inference_steps", "'many'"]),
    ("POST", G, {**OK, "num_inference_steps": 0}, {}, 400, "invalid_params", ["num_inference_steps", "0"]),
    ("POST", G, {**OK, "n": 5}, {}, 400, "invalid_params", ["n", "5"]),
    ("POST", G, {**OK, "n": 0}, {}, 400, "invalid_params", ["n", "0"]),
    ("POST", G, {**OK, "n": True}, {}, 400, "invalid_params", ["n: true is not"]),
    ("POST", G, {**OK, "response_format": "jpeg"}, {}, 400, "invalid_params", ["response_format", "'jpeg'"]),
    ("POST", G, {**OK, "seed": -1}, {}, 400, "invalid_params", ["seed", "-1"]),
    ("POST", Q, {**OK, "seed": 2**64}, {}, 400, "invalid_params", ["seed", str(2**64), "maximum"]),
    ("POST", G, {**OK, "model": "nope"}, {}, 404, "resource_not_found", ["Model not found: nope"]),
    ("POST", "/api/ai/images/edit", OK, {}, 400, "invalid_params", ["input_image"]),
    ("POST", Q, {**OK, "num_generations": 5}, {}, 400, "invalid_params", ["num_generations", "5"]),
    ("POST", Q, {**OK, "num_generations": "2"}, {}, 400, "invalid_params", ["num_generations", "'2'"]),
    ("POST", Q, {**OK, "aspect_ratio": "7:3"}, {}, 400, "invalid_params", ["aspect_ratio", "'7:3'"]),
    ("POST", Q, {**OK, "n": 2}, {}, 400, "invalid_params", ["n", "2"]),
    # the other endpoint's count field is named as that, whatever its value
    ("POST", Q, {**OK, "n": 5}, {}, 400, "invalid_params",
     ["n: unknown field here (value 5); this endpoint takes 'num_generations'"]),
    ("POST", G, {**OK, "num_generations": 9}, {}, 400, "invalid_params",
     ["num_generations: unknown field here (value 9); this endpoint takes 'n'"]),
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
    # the key is checked before the body is read
    ("POST", Q, b"{not json", {"Authorization": ""}, 401, "unauthenticated", ["Authorization"]),
    ("POST", G, b"{not json", {"Authorization": "Bearer ih_wrong"}, 401, "unauthenticated", ["unknown"]),
    ("POST", "/api/ai/images/generations", b"{not json", {"Authorization": ""}, 401, "unauthenticated",
     ["Authorization"]),
    # JSON Python reads but no request may carry
    ("POST", G, b'{"model": "tiny-sd", "prompt": "a", "guidance_scale": NaN}', {}, 400,
     "invalid_params", ["body", "NaN"]),
    ("POST", Q, b'{"model": "tiny-sd", "prompt": "a", "strength": -Infinity}', {}, 400,
     "invalid_params", ["body", "-Infinity"]),
    ("POST", G, b'{"model": "tiny-sd", "prompt": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     {}, 400, "invalid_params", ["body", "nested"]),
    ("POST", Q, b'{"model": "tiny-sd", "prompt": "a", "seed": ' + b"9" * 5000 + b"}", {}, 400,
     "invalid_params", ["body", "4300 digits"]),
    ("POST", G, b'{"model": "tiny-sd", "prompt": "a\\ud800"}', {}, 400, "invalid_params",
     ["prompt", "\\ud800", "surrogate"]),
    ("POST", Q, b'{"model": "tiny-sd", "prompt": "a", "\\udc00": 1}', {}, 400, "invalid_params",
     ["\\udc00", "surrogate"]),
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


@pytest.mark.parametrize("body", [
    {**OK, "input_image": ["data:image/png;base64," + "A" * 100_000] * 15},  # over maxItems
    {**OK, "x" * 900_000: 1},  # an unknown field with a long name
    {**OK, "model": "m" * 100_000},  # an unknown model with a long id
    {**OK, "num_inference_steps": "9" * 100_000},  # a wrong type, long
], ids=["many-images", "long-field-name", "long-model-id", "long-value"])
def test_errors_name_long_values_without_echoing_them(api: httpx.Client, body) -> None:  # type: ignore[no-untyped-def]
    r = api.post(Q, json=body)
    assert r.status_code in (400, 404), r.text[:300]
    detail = r.json()["error"]["detail"]
    assert len(r.content) < 2000 and "characters)" in detail, detail[:300]


def test_whole_number_floats_count_as_integers(api: httpx.Client) -> None:
    """JSON Schema calls 2.0 an integer, so the validator lets it through: it must then run as 2,
    on the sync path and in the queue, and be echoed as 2."""
    r = api.post(G, json={**OK, "n": 2.0, "num_inference_steps": 1.0, "seed": 5.0})
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["images"]) == 2
    r = api.post(Q, json={**OK, "num_generations": 2.0, "seed": 7.0, "num_inference_steps": 1.0})
    assert r.status_code == 200, r.text[:300]
    ids = [g["generation_id"] for g in r.json()["generations"]]
    assert len(ids) == 2
    for generation_id in ids:
        row = _finished(api, generation_id)
        assert row["status"] == "succeeded", row
        assert row["num_inference_steps"] == 1 and isinstance(row["num_inference_steps"], int)
        assert row["seed"] in (7, 8) and isinstance(row["seed"], int)


def _finished(api: httpx.Client, generation_id: str) -> dict:  # type: ignore[type-arg]
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = api.get(f"{Q}/{generation_id}").json()
        if row["status"] in ("succeeded", "failed", "cancelled"):
            return row
        time.sleep(0.1)
    raise AssertionError(f"{generation_id} did not finish")


def test_client_hanging_up_mid_body_is_not_an_error(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """A client that closes its connection before its body has arrived (a load generator
    stopping, a timeout) is logged as that, not as an unhandled error; nothing is stored and the
    server goes on answering."""
    import socket
    import time

    before = _count_rows(api)
    log = server.data_dir / "server.log"
    logged = log.read_text(errors="replace")
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(b"POST /api/ai/queue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + server.key.encode() + b"\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b'{"model": "tiny-sd", "pro')
        time.sleep(0.3)  # the route is reading the body when the client goes
    deadline = time.monotonic() + 10
    while "client disconnected" not in log.read_text(errors="replace")[len(logged):]:
        assert time.monotonic() < deadline, log.read_text(errors="replace")[len(logged):]
        time.sleep(0.1)
    new = log.read_text(errors="replace")[len(logged):]
    assert "unhandled error" not in new and "Traceback" not in new, new
    assert api.get("/api/ai/models").status_code == 200
    assert _count_rows(api) == before


@pytest.mark.parametrize("path", ["/api/ai/queue/" + "g" * 5000, "/docs/" + "p" * 5000 + ".md"])
def test_not_found_quotes_a_long_id_clipped(api: httpx.Client, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 404
    detail = r.json()["error"]["detail"]
    assert detail.endswith("... (5000 characters)") and len(detail) < 130, detail


def test_a_method_a_path_does_not_take_is_405_with_allow(api: httpx.Client) -> None:
    r = api.put("/api/ai/queue", json=OK)
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed", r.text
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert r.json()["error"]["detail"].startswith("no route PUT /api/ai/queue (it takes ")
    unknown = api.get("/api/ai/" + "x" * 3000)
    assert unknown.status_code == 404 and len(unknown.json()["error"]["detail"]) < 130
