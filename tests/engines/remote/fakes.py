"""Fake provider servers on loopback, speaking each provider's documented wire format.

Each fake validates what it is sent the way the real API does (unknown fields, enums, auth) and
answers in the real shapes. Tests steer them with :meth:`FakeServer.fault` (the next requests
answer 429, 500, time out, block for safety, return no image...) and read what arrived in
:attr:`FakeServer.log`. They are real HTTP servers (``ThreadingHTTPServer``) in a thread, so the
engine under test runs its real client code, and a server subprocess can reach them too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

KEY = "test-provider-key-0123456789"

# ---- the plumbing ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, list[str]]


class FakeServer:
    """A loopback HTTP server; subclasses implement :meth:`route`."""

    def __init__(self) -> None:
        self.log: list[Received] = []
        self._faults: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                parts = urlsplit(self.path)
                received = Received(self.command, parts.path, {k.lower(): v for k, v in self.headers.items()},
                                    body, parse_qs(parts.query))
                with fake._lock:
                    fake.log.append(received)
                reply = fake.route(received)
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fault(self, kind: str, times: int = 1, **options: Any) -> None:
        """The next ``times`` faultable requests answer ``kind`` instead of the normal answer."""
        with self._lock:
            self._faults += [(kind, options)] * times

    def take_fault(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def calls(self, method: str, contains: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.log if r.method == method and contains in r.path]

    def route(self, request: Received) -> Reply:
        raise NotImplementedError


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def colour_of(prompt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(prompt.encode()).digest()
    return digest[0], digest[1], digest[2]


def size_of(resolution: str, ratio: str | None) -> tuple[int, int]:
    """The provider's own output size: base 512/1024/2048/4096, 1:1 when no ratio is given."""
    base = {"512": 512, "0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}[resolution]
    w, h = (int(x) for x in (ratio or "1:1").split(":"))
    root = math.sqrt(w / h)
    return 16 * round(base * root / 16), 16 * round(base / root / 16)


def is_image_ref(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith(("https://", "http://", "data:image/")))


# ---- Google Gemini -----------------------------------------------------------------------------

RATIOS_10 = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
RATIOS_14 = RATIOS_10 + ["4:1", "1:4", "8:1", "1:8"]
GEMINI_MODELS: dict[str, dict[str, Any]] = {
    "gemini-3.1-flash-image": {"ratios": RATIOS_14, "sizes": ["512", "1K", "2K", "4K"],
                               "thinking": ["minimal", "high"], "search": True},
    "gemini-nano-banana-2.1": {"ratios": RATIOS_14, "sizes": ["1K", "2K", "4K"],
                               "thinking": ["minimal", "high"], "search": True},
    "gemini-3.1-flash-lite-image": {"ratios": RATIOS_14, "sizes": ["1K"], "thinking": [], "search": False},
    "gemini-3-pro-image": {"ratios": RATIOS_10, "sizes": ["1K", "2K", "4K"],
                           "thinking": ["low", "high"], "search": True},
    "gemini-2.5-flash-image": {"ratios": RATIOS_10, "sizes": [], "thinking": [], "search": False},
}
GEMINI_MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""Inline data: "If the total request size exceeds 20 MB, use the Files API" (Gemini docs)."""
HARM_CATEGORIES = ["HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
                   "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
                   "HARM_CATEGORY_CIVIC_INTEGRITY"]
THRESHOLDS = ["HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
              "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"]
GENERATION_CONFIG_FIELDS = {"responseModalities", "imageConfig", "thinkingConfig", "seed",
                            "temperature", "topP", "topK", "candidateCount", "maxOutputTokens",
                            "stopSequences"}
VIOLENT_WORD = "violent"
"""A prompt with this word is 'dangerous content' of HIGH probability: blocked unless BLOCK_NONE."""


class GeminiError(Exception):
    def __init__(self, status: int, state: str, message: str) -> None:
        super().__init__(message)
        self.status, self.state, self.message = status, state, message

    def reply(self) -> Reply:
        return Reply(self.status, {"error": {"code": self.status, "message": self.message,
                                             "status": self.state}})


class FakeGemini(FakeServer):
    """``POST /v1beta/models/{model}:generateContent`` with ``x-goog-api-key``. The ``-preview``
    codes are gone, as at Google since 2026-06-25; a test may retire more (``retired``)."""

    def __init__(self) -> None:
        super().__init__()
        self.retired: set[str] = set()

    def route(self, request: Received) -> Reply:
        try:
            model = self._authorize(request)
            if int(request.headers.get("content-length", 0)) > GEMINI_MAX_REQUEST_BYTES:
                raise GeminiError(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: "
                                  f"{GEMINI_MAX_REQUEST_BYTES} bytes.")
            self._validate(model, request.body)
        except GeminiError as exc:
            return exc.reply()
        fault = self.take_fault()
        if fault:
            return self._fault(*fault, body=request.body)
        return Reply(200, self._answer(request.body))

    def _authorize(self, request: Received) -> str:
        path = request.path
        if request.method != "POST" or not path.startswith("/v1beta/models/") \
                or not path.endswith(":generateContent"):
            raise GeminiError(404, "NOT_FOUND", f"path {path} not found")
        key = request.headers.get("x-goog-api-key") or (request.query.get("key") or [""])[0]
        if not key:
            raise GeminiError(403, "PERMISSION_DENIED",
                              "Method doesn't allow unregistered callers (callers without established "
                              "identity). Please use API Key or other form of API consumer identity.")
        if key != KEY:
            raise GeminiError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        model = path[len("/v1beta/models/"):-len(":generateContent")]
        if model not in GEMINI_MODELS or model in self.retired:
            raise GeminiError(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, "
                              "or is not supported for generateContent.")
        return model

    def _validate(self, model: str, body: Any) -> None:
        spec = GEMINI_MODELS[model]

        def bad(message: str) -> GeminiError:
            return GeminiError(400, "INVALID_ARGUMENT", message)

        if not isinstance(body, dict):
            raise bad("Invalid JSON payload received.")
        for name in body:
            if name not in ("contents", "generationConfig", "tools", "safetySettings",
                            "systemInstruction", "toolConfig"):
                raise bad(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise bad("* GenerateContentRequest.contents: contents is not specified")
        for content in contents:
            if content.get("role", "user") not in ("user", "model"):
                raise bad(f"Please use a valid role: user, model. (got {content.get('role')})")
            for part in content.get("parts") or []:
                kinds = [k for k in part if k in ("text", "inlineData", "fileData")]
                if len(kinds) != 1:
                    raise bad(f"a part must have exactly one data field, got {sorted(part)}")
                if "inlineData" in part:
                    inline = part["inlineData"]
                    if inline.get("mimeType") not in ("image/png", "image/jpeg", "image/webp",
                                                      "image/heic", "image/heif"):
                        raise bad(f"Unsupported MIME type: {inline.get('mimeType')}")
                    try:
                        Image.open(io.BytesIO(base64.b64decode(inline.get("data", ""), validate=True)))
                    except (binascii.Error, OSError, ValueError) as exc:
                        raise bad(f"Unable to process input image ({exc})") from exc
        config = body.get("generationConfig") or {}
        for name in config:
            if name not in GENERATION_CONFIG_FIELDS:
                raise bad(f'Invalid JSON payload received. Unknown name "{name}" at '
                          "'generation_config': Cannot find field.")
        modalities = config.get("responseModalities") or []
        if "IMAGE" not in modalities or any(m not in ("TEXT", "IMAGE") for m in modalities):
            raise bad(f"responseModalities {modalities} must include IMAGE for an image model")
        image_config = config.get("imageConfig") or {}
        for name in image_config:
            if name not in ("aspectRatio", "imageSize"):
                raise bad(f'Unknown name "{name}" at \'generation_config.image_config\'')
        if "aspectRatio" in image_config and image_config["aspectRatio"] not in spec["ratios"]:
            raise bad(f"Unsupported aspect ratio: {image_config['aspectRatio']}")
        if "imageSize" in image_config and image_config["imageSize"] not in spec["sizes"]:
            raise bad(f"Unsupported image size: {image_config['imageSize']}")
        thinking = config.get("thinkingConfig")
        if thinking is not None and thinking.get("thinkingLevel") not in spec["thinking"]:
            raise bad(f"Thinking level {thinking.get('thinkingLevel')} is not supported for "
                      f"this model.")
        if "seed" in config and not (isinstance(config["seed"], int) and -2**31 <= config["seed"] < 2**31):
            raise bad(f"Invalid value at 'generation_config.seed' (TYPE_INT32), {config['seed']}")
        for tool in body.get("tools") or []:
            if set(tool) - {"google_search", "googleSearch"} or not tool:
                raise bad(f"Unknown tool {sorted(tool)}")
            if not spec["search"]:
                raise bad("Search as a tool is not enabled for this model")
        seen = set()
        for setting in body.get("safetySettings") or []:
            if setting.get("category") not in HARM_CATEGORIES:
                raise bad(f"Invalid value at 'safety_settings[0].category', {setting.get('category')}")
            if setting.get("threshold") not in THRESHOLDS:
                raise bad(f"Invalid value at 'safety_settings[0].threshold', {setting.get('threshold')}")
            if setting["category"] in seen:
                raise bad(f"Duplicate category in safety_settings: {setting['category']}")
            seen.add(setting["category"])

    def _fault(self, kind: str, options: dict[str, Any], body: Any) -> Reply:
        if kind == "429":
            error = {"code": 429, "status": "RESOURCE_EXHAUSTED",
                     "message": "Resource has been exhausted (e.g. check quota)."}
            if "retry_delay" in options:  # as the Gemini API sends it: RetryInfo, no header
                error["details"] = [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                     "retryDelay": options["retry_delay"]}]
                return Reply(429, {"error": error})
            return Reply(429, {"error": error},
                         headers={"Retry-After": str(options.get("retry_after", 0))})
        if kind in ("500", "503"):
            state = "INTERNAL" if kind == "500" else "UNAVAILABLE"
            return Reply(int(kind), {"error": {"code": int(kind), "status": state,
                                               "message": "An internal error has occurred."}})
        if kind == "timeout":
            reply = Reply(200, self._answer(body))
            reply.delay = options.get("seconds", 5.0)
            return reply
        if kind == "safety":
            return Reply(200, {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}})
        if kind == "image_safety":
            return Reply(200, {"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0,
                                               "content": {"role": "model", "parts": []}}]})
        if kind == "noimage":
            return Reply(200, {"candidates": [{"finishReason": "STOP", "index": 0, "content": {
                "role": "model", "parts": [{"text": "I can only describe it: a red cube."}]}}]})
        if kind == "garbage":
            return Reply(200, raw=b"<html>gateway</html>", content_type="text/html")
        if kind == "image":  # the answer's shape, with these bytes as its image
            return Reply(200, {"candidates": [{"finishReason": "STOP", "index": 0, "content": {
                "role": "model", "parts": [{"inlineData": {
                    "mimeType": "image/png", "data": base64.b64encode(options["data"]).decode()}}]}}]})
        raise ValueError(kind)

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = " ".join(p.get("text", "") for p in body["contents"][0]["parts"])
        if VIOLENT_WORD in prompt and self._blocks_dangerous(body.get("safetySettings") or []):
            return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}}
        image_config = body.get("generationConfig", {}).get("imageConfig", {})
        width, height = size_of(image_config.get("imageSize", "1K"), image_config.get("aspectRatio"))
        final = base64.b64encode(png(width, height, colour_of(prompt))).decode()
        thought = base64.b64encode(png(64, 64, (1, 2, 3))).decode()
        return {"candidates": [{"finishReason": "STOP", "index": 0, "content": {"role": "model", "parts": [
            {"text": "Sketching the layout first.", "thought": True},
            {"inlineData": {"mimeType": "image/png", "data": thought}, "thought": True},
            {"text": "Here is your image."},
            {"inlineData": {"mimeType": "image/png", "data": final}},
        ]}}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1290},
            "modelVersion": "fake"}

    @staticmethod
    def _blocks_dangerous(settings: list[dict[str, str]]) -> bool:
        for setting in settings:
            if setting["category"] == "HARM_CATEGORY_DANGEROUS_CONTENT":
                return setting["threshold"] not in ("BLOCK_NONE", "OFF")
        return True  # Google's default blocks at medium and above


# ---- fal.ai queue ------------------------------------------------------------------------------

FAL_RATIOS = ["auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16",
              "4:1", "1:4", "8:1", "1:8"]
FAL_FIELDS: dict[str, dict[str, Any]] = {
    "prompt": {"type": str},
    "num_images": {"type": int, "range": (1, 4)},
    "seed": {"type": int},
    "aspect_ratio": {"type": str, "enum": FAL_RATIOS},
    "output_format": {"type": str, "enum": ["jpeg", "png", "webp"]},
    "safety_tolerance": {"type": str, "enum": ["1", "2", "3", "4", "5", "6"]},
    "sync_mode": {"type": bool},
    "resolution": {"type": str, "enum": ["0.5K", "1K", "2K", "4K"]},
    "limit_generations": {"type": bool},
    "enable_web_search": {"type": bool},
    "thinking_level": {"type": str, "enum": ["minimal", "high"]},
}
FAL_APPS = {"fal-ai/nano-banana-2", "fal-ai/nano-banana", "fal-ai/nano-banana-pro",
            "fal-ai/nano-banana-2-lite"}


@dataclass
class FalJob:
    endpoint: str
    input: dict[str, Any]
    polls_left: int
    hang: bool = False
    outcome: str = "ok"
    cancelled: bool = False


class FakeFal(FakeServer):
    """fal's queue: ``POST /{app}[/edit]``, ``GET .../requests/{id}/status``, ``GET .../requests/{id}``,
    ``PUT .../requests/{id}/cancel``, with ``Authorization: Key <key>``."""

    def __init__(self, polls: int = 2) -> None:
        super().__init__()
        self.polls = polls
        self.jobs: dict[str, FalJob] = {}
        self.files: dict[str, bytes] = {}
        self.urls_at = ""
        """Where the submit answer's status, response and cancel URLs point (``{urls_at}/{app}/
        requests/{id}``): default this server; a path ``/q`` here is served as well."""

    def route(self, request: Received) -> Reply:
        path = request.path[2:] if request.path.startswith("/q/") else request.path
        if path.startswith("/files/"):
            data = self.files.get(path)
            return Reply(200, raw=data, content_type="image/png") if data else Reply(404, {"detail": "Not Found"})
        if request.headers.get("authorization") != f"Key {KEY}":
            return Reply(401, {"detail": "No user found for Key ID and Secret"})
        parts = path.strip("/").split("/")
        if "requests" in parts:
            index = parts.index("requests")
            app, rest = "/".join(parts[:index]), parts[index + 1:]
            return self._request(request.method, app, rest)
        endpoint = "/".join(parts)
        if request.method != "POST" or "/".join(parts[:2]) not in FAL_APPS \
                or parts[2:] not in ([], ["edit"]):
            return Reply(404, {"detail": f"Application {endpoint} not found"})
        fault = self.take_fault()
        if fault and fault[0] in ("429", "500"):
            return Reply(int(fault[0]), {"detail": "Too many requests" if fault[0] == "429"
                                         else "Internal server error"},
                         headers={"Retry-After": str(fault[1].get("retry_after", 0))})
        request_id = str(uuid.uuid4())
        self.jobs[request_id] = FalJob(endpoint, request.body if isinstance(request.body, dict) else {},
                                       self.polls, hang=bool(fault and fault[0] == "hang"),
                                       outcome=fault[0] if fault else "ok")
        base = f"{self.urls_at or self.url}/{'/'.join(parts[:2])}/requests/{request_id}"
        return Reply(200, {"status": "IN_QUEUE", "request_id": request_id, "response_url": base,
                           "status_url": f"{base}/status", "cancel_url": f"{base}/cancel",
                           "queue_position": 0})

    def _request(self, method: str, app: str, rest: list[str]) -> Reply:
        job = self.jobs.get(rest[0]) if rest else None
        if job is None or "/".join(job.endpoint.split("/")[:2]) != app:
            return Reply(404, {"detail": "Request not found"})
        if rest[1:] == ["status"] and method == "GET":
            if job.cancelled:
                return Reply(200, {"status": "COMPLETED", "error": "Request was cancelled"})
            if job.hang:
                return Reply(200, {"status": "IN_PROGRESS", "logs": []})
            if job.polls_left > 0:
                job.polls_left -= 1
                return Reply(200, {"status": "IN_QUEUE" if job.polls_left else "IN_PROGRESS",
                                   "queue_position": job.polls_left})
            return Reply(200, {"status": "COMPLETED"})
        if rest[1:] == ["cancel"] and method == "PUT":
            if job.polls_left == 0 and not job.hang:
                return Reply(400, {"status": "ALREADY_COMPLETED"})
            job.cancelled = True
            return Reply(202, {"status": "CANCELLATION_REQUESTED"})
        if rest[1:] == [] and method == "GET":
            if job.hang or job.polls_left > 0:
                return Reply(400, {"detail": "Request is still in progress"})
            return self._result(rest[0], job)
        return Reply(405, {"detail": "Method Not Allowed"})

    def _result(self, request_id: str, job: FalJob) -> Reply:
        errors = self._validate(job)
        if errors:
            return Reply(422, {"detail": errors})
        if job.outcome == "safety":
            return Reply(422, {"detail": [{"loc": ["body", "prompt"], "type": "content_policy_violation",
                                           "msg": "The content could not be processed because it "
                                                  "contained material flagged by a content checker."}]})
        if job.outcome == "noimage":
            return Reply(200, {"images": [], "description": "No image for that."})
        if job.outcome == "runner":  # fal retried it 10 times, then marked it failed
            return Reply(503, {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
                         headers={"X-Fal-Error-Type": "runner_disconnected"})
        width, height = size_of(job.input.get("resolution", "1K"),
                                None if job.input.get("aspect_ratio", "auto") == "auto" else job.input["aspect_ratio"])
        images = []
        for i in range(job.input.get("num_images", 1)):
            path = f"/files/{request_id}/{i}.png"
            self.files[path] = png(width, height, colour_of(job.input["prompt"] + str(i)))
            images.append({"url": f"{self.url}{path}", "content_type": "image/png",
                           "file_name": f"{i}.png", "width": width, "height": height})
        return Reply(200, {"images": images, "description": ""})

    @staticmethod
    def _validate(job: FalJob) -> list[dict[str, Any]]:
        body, edit = job.input, job.endpoint.endswith("/edit")
        errors = []

        def error(loc: str, msg: str, kind: str) -> None:
            errors.append({"loc": ["body", loc], "msg": msg, "type": kind})

        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            error("prompt", "field required", "value_error.missing")
        for name, value in body.items():
            spec = FAL_FIELDS.get(name)
            if name == "image_urls":
                if not edit:
                    error(name, "extra fields not permitted", "value_error.extra")
                elif not isinstance(value, list) or not value or not all(map(is_image_ref, value)):
                    error(name, "must be a non-empty list of image URLs or data URIs", "type_error")
                continue
            if spec is None:
                error(name, "extra fields not permitted", "value_error.extra")
                continue
            if not isinstance(value, spec["type"]) or (spec["type"] is int and isinstance(value, bool)):
                error(name, f"value is not a valid {spec['type'].__name__}", "type_error")
            elif "enum" in spec and value not in spec["enum"]:
                error(name, f"value is not a valid enumeration member; permitted: {spec['enum']}",
                      "type_error.enum")
            elif "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
                error(name, f"ensure this value is within {spec['range']}", "value_error.number")
        if edit and "image_urls" not in body:
            error("image_urls", "field required", "value_error.missing")
        return errors


# ---- an upstream Oxen-compatible hub -----------------------------------------------------------

OXEN_MODELS: dict[str, set[str]] = {
    "nano-banana-2": {"prompt", "aspect_ratio", "resolution", "enable_web_search", "safety_tolerance",
                      "google_search", "thinking_level", "input_image"},
}
UNAVAILABLE_MODELS = {"google-nano-banana-pro"}


class FakeOxenHub(FakeServer):
    """API.md's queue: ``POST /api/ai/queue``, ``GET|DELETE /api/ai/queue/{id}``, Bearer keys,
    the error body of API.md section 1; rows finish after ``polls`` status reads."""

    def __init__(self, polls: int = 1) -> None:
        super().__init__()
        self.polls = polls
        self.rows: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}

    @staticmethod
    def error(status: int, kind: str, detail: str) -> Reply:
        return Reply(status, {"error": {"type": kind, "title": kind, "detail": detail},
                              "status": "error", "status_message": kind})

    def route(self, request: Received) -> Reply:
        if request.path.startswith("/files/"):
            data = self.files.get(request.path)
            return Reply(200, raw=data, content_type="image/png") if data else self.error(
                404, "resource_not_found", "no such file")
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return self.error(401, "unauthenticated", "unknown or revoked key")
        if request.path == "/api/ai/queue" and request.method == "POST":
            return self._enqueue(request.body)
        if request.path.startswith("/api/ai/queue/"):
            row = self.rows.get(request.path.rsplit("/", 1)[1])
            if row is None:
                return self.error(404, "resource_not_found", "Generation not found")
            if request.method == "DELETE":
                if row["status"] not in ("queued", "processing"):
                    return self.error(409, "invalid_state", "already ended")
                row["status"] = "cancelled"
                return Reply(200, {"status": "success", "generation_id": row["generation_id"]})
            return Reply(200, self._advance(row))
        return self.error(404, "resource_not_found", f"no route {request.path}")

    def _enqueue(self, body: Any) -> Reply:
        fault = self.take_fault()
        if fault and fault[0] in ("429", "500"):
            return self.error(int(fault[0]), "rate_limited" if fault[0] == "429" else "unknown_error",
                              "slow down" if fault[0] == "429" else "a bug")
        if not isinstance(body, dict):
            return self.error(400, "invalid_params", "body: expected a JSON object")
        model = body.get("model")
        if model in UNAVAILABLE_MODELS:
            return self.error(503, "model_unavailable", f"{model} runs at a remote provider, and no "
                              "provider is configured: set IMAGEHUB_GEMINI_API_KEY")
        if model not in OXEN_MODELS:
            return self.error(404, "resource_not_found", f"Model not found: {model}")
        for name in body:
            if name not in OXEN_MODELS[model] | {"model", "num_generations", "target_namespace"}:
                return self.error(400, "invalid_params", f"{name}: unknown field (value {body[name]!r})")
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return self.error(400, "invalid_params", "prompt: required field is missing")
        for uri in body.get("input_image") or []:
            if not is_image_ref(uri):
                return self.error(400, "invalid_params", f"input_image: {uri[:40]!r} is not an image")
        generations = []
        for _ in range(int(body.get("num_generations", 1))):
            generation_id = str(uuid.uuid4())
            self.rows[generation_id] = {
                "generation_id": generation_id, "model_name": model, "prompt": body["prompt"],
                "media_type": "image", "status": "queued", "result_url": None, "error_message": None,
                "enqueued_at": int(time.time()), "_polls": self.polls,
                "_outcome": fault[0] if fault else "ok", "_body": body,
            }
            generations.append({"generation_id": generation_id, "status": "queued"})
        return Reply(200, {"generations": generations})

    def _advance(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["status"] in ("queued", "processing") and row["_outcome"] != "hang":
            if row["_polls"] > 0:
                row["_polls"] -= 1
                row["status"] = "processing"
            elif row["_outcome"] == "safety":
                row["status"] = "failed"
                row["error_message"] = "blocked by the safety filter (violence) at tolerance 2"
            elif row["_outcome"] == "fail":
                row["status"] = "failed"
                row["error_message"] = "engine error: out of memory"
            else:
                path = f"/files/{row['generation_id']}/0.png"
                self.files[path] = png(64, 48, colour_of(row["prompt"]))
                row["status"], row["result_url"] = "succeeded", f"{self.url}{path}"
        elif row["_outcome"] == "hang":
            row["status"] = "processing"
        return {k: v for k, v in row.items() if not k.startswith("_")}


# ---- OpenAI Images ------------------------------------------------------------------------------

OPENAI_FIELDS: dict[str, Any] = {
    "model": ["gpt-image-1"], "prompt": str, "n": int, "size": ["auto", "1024x1024", "1536x1024", "1024x1536"],
    "quality": ["auto", "low", "medium", "high"], "moderation": ["auto", "low"],
    "output_format": ["png", "jpeg", "webp"], "background": ["auto", "transparent", "opaque"],
    "output_compression": int, "user": str,
}
OPENAI_EDIT_FIELDS: dict[str, Any] = {
    **{k: v for k, v in OPENAI_FIELDS.items() if k != "moderation"}, "input_fidelity": ["high", "low"],
}
"""The edits form takes no ``moderation`` (``ImageEditParams`` in OpenAI's SDK, made from its spec)."""


def parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], list[tuple[str, bytes, str]]]:
    """``multipart/form-data`` → (fields, [(name, bytes, content type)]) with the email parser."""
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields, files = {}, []
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename():
            files.append((name, data, part.get_content_type()))
        else:
            fields[name] = data.decode()
    return fields, files


class FakeOpenAI(FakeServer):
    """``POST /v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart, ``image[]``)."""

    @staticmethod
    def error(status: int, message: str, code: str | None, param: str | None = None,
              kind: str = "invalid_request_error") -> Reply:
        return Reply(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})

    def route(self, request: Received) -> Reply:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {KEY}":
            # the real API echoes (a masked form of) the key it was given
            return self.error(401, f"Incorrect API key provided: {auth.removeprefix('Bearer ')}.",
                              "invalid_api_key")
        if request.method != "POST" or request.path not in ("/v1/images/generations", "/v1/images/edits"):
            return self.error(404, f"Invalid URL ({request.method} {request.path})", None)
        if request.path.endswith("/edits"):
            raw = request.body if isinstance(request.body, bytes) else b""
            fields, files = parse_multipart(request.headers.get("content-type", ""), raw)
            body: dict[str, Any] = {k: int(v) if k in ("n", "output_compression") else v for k, v in fields.items()}
            images = [f for f in files if f[0] == "image[]"]
            if not images:
                return self.error(400, "Missing required parameter: 'image'.", "missing_required_parameter", "image")
            self.last_edit_images = images
        else:
            body = request.body if isinstance(request.body, dict) else {}
        problem = self._validate(body, OPENAI_EDIT_FIELDS if request.path.endswith("/edits")
                                 else OPENAI_FIELDS)
        if problem:
            return problem
        fault = self.take_fault()
        if fault and fault[0] in ("429", "500"):
            return self.error(int(fault[0]), "Rate limit reached" if fault[0] == "429" else "Server error",
                              None, kind="rate_limit_exceeded" if fault[0] == "429" else "server_error")
        if fault and fault[0] == "safety":
            return self.error(400, "Your request was rejected as a result of our safety system.",
                              "moderation_blocked", kind="image_generation_user_error")
        if fault and fault[0] == "noimage":
            return Reply(200, {"created": int(time.time()), "data": []})
        size = body.get("size", "auto")
        width, height = (1024, 1024) if size == "auto" else (int(x) for x in size.split("x"))
        data = [{"b64_json": base64.b64encode(png(width, height, colour_of(body["prompt"] + str(i)))).decode()}
                for i in range(body.get("n", 1))]
        return Reply(200, {"created": int(time.time()), "data": data,
                           "usage": {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170}})

    def _validate(self, body: dict[str, Any], known: dict[str, Any]) -> Reply | None:
        for name, value in body.items():
            spec = known.get(name)
            if spec is None:
                return self.error(400, f"Unknown parameter: '{name}'.", "unknown_parameter", name)
            if isinstance(spec, list) and value not in spec:
                return self.error(400, f"Invalid value: '{value}'. Supported values are: {spec}.",
                                  "invalid_value", name)
            if isinstance(spec, type) and not isinstance(value, spec):
                return self.error(400, f"Invalid type for '{name}'.", "invalid_type", name)
        for required in ("model", "prompt"):
            if required not in body:
                return self.error(400, f"Missing required parameter: '{required}'.",
                                  "missing_required_parameter", required)
        if not 1 <= body.get("n", 1) <= 10:
            return self.error(400, "Invalid 'n': must be between 1 and 10.", "integer_out_of_range", "n")
        return None


class ImageHost(FakeServer):
    """Serves input images: ``/ok.png``, ``/big.png`` (over a limit), ``/text`` (not an image),
    ``/slow.png`` (answers late), ``/redirect`` (to a given URL)."""

    def __init__(self, redirect_to: str = "") -> None:
        super().__init__()
        self.redirect_to = redirect_to
        self.image = png(40, 30, (10, 200, 30))

    def route(self, request: Received) -> Reply:
        if request.path == "/ok.png":
            return Reply(200, raw=self.image, content_type="image/png")
        if request.path == "/big.png":
            return Reply(200, raw=self.image + b"\0" * 200_000, content_type="image/png")
        if request.path == "/text":
            return Reply(200, raw=b"hello", content_type="text/plain")
        if request.path == "/slow.png":
            return Reply(200, raw=self.image, content_type="image/png", delay=3.0)
        if request.path == "/redirect":
            return Reply(302, raw=b"", headers={"Location": self.redirect_to})
        return Reply(404, raw=b"not found", content_type="text/plain")
