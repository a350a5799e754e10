"""The cURL / jq / awk snippets of ../shared/seed/nano-banana-2.txt, read from the page and run by
bash against the real server with only the host, the key and the model id changed.

The page's "full" variants carry nano-banana-2's own fields (enable_web_search,
safety_tolerance): a local diffusion model refuses those as unknown fields, so they run where
nano-banana-2 itself is served (tests/e2e/test_providers.py, against a fake Gemini).
"""

from __future__ import annotations

import json

from seed import run_snippet, snippets

SNIPPETS = snippets()
SYNC, POLL, SSE, MODEL = SNIPPETS["sync"], SNIPPETS["poll"], SNIPPETS["sse"], SNIPPETS["model"]

__all__ = ["SNIPPETS", "SYNC", "POLL", "SSE", "MODEL", "run_snippet"]


def test_page_has_all_snippets() -> None:
    assert sorted(SNIPPETS) == ["model", "poll", "poll_full", "sse", "sse_full", "sync", "sync_full"]


def test_sync_snippet_returns_images(server) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(run_snippet(server, SYNC))
    assert body["model"] == "tiny-sd" and body["images"][0]["url"].startswith(server.url)
    assert body["image_url"] == body["images"][0]["url"]


def test_poll_snippet_reaches_succeeded(server) -> None:  # type: ignore[no-untyped-def]
    out = run_snippet(server, POLL)
    statuses = [line.split(": ", 1)[1].strip() for line in out.splitlines() if line.startswith("Status:")]
    assert statuses[-1] == "succeeded"
    row = json.loads(out[out.index("{"):])
    assert row["status"] == "succeeded" and row["result_url"].startswith(server.url)


def test_sse_snippet_prints_completed_payload(server) -> None:  # type: ignore[no-untyped-def]
    payload = json.loads(run_snippet(server, SSE))
    assert payload["status"] == "succeeded" and payload["media_type"] == "image"
    assert payload["model"] == "tiny-sd" and payload["url"].startswith(server.url)


def test_sse_snippet_on_a_slow_job(server) -> None:  # type: ignore[no-untyped-def]
    """The stream is open well before the job ends: the live path, not the catch-up window."""
    payload = json.loads(run_snippet(server, SSE, model="tiny-sd-slow"))
    assert payload["status"] == "succeeded" and payload["model"] == "tiny-sd-slow"


def test_model_details_snippet(server) -> None:  # type: ignore[no-untyped-def]
    model = json.loads(run_snippet(server, MODEL))
    assert model["id"] == "tiny-sd" and model["json_request_schema"] == model["request_schema"]
