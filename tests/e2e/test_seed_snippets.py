"""The cURL / jq / awk snippets of ../shared/seed/nano-banana-2.txt, run by bash against the real
server with only the host, the key and the model id changed (API.md's note on the page's stray
extraction spaces applies: they are read without them; the trailing space after the key is kept).

The snippets with nano-banana-2's own fields (enable_web_search, safety_tolerance) need a model
that takes those fields: they run against nano-banana-2 once a provider serves it (issue 4).
"""

from __future__ import annotations

import json
import subprocess

HOST = "https://hub.oxen.ai"

SYNC = """curl -X POST https://hub.oxen.ai/api/ai/images/generate \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer $OXEN_API_KEY " \\
-d '{
"model": "nano-banana-2",
"prompt": "<prompt>"
}'
"""

POLL = """# Enqueue, capture the generation id.
GEN_ID=$( curl -s -X POST https://hub.oxen.ai/api/ai/queue \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer $OXEN_API_KEY " \\
-d '{
"model": "nano-banana-2",
"prompt": "<prompt>"
}' | jq -r '.generations[0].generation_id' )
# Poll until the generation reaches a terminal status.
while true ; do
STATUS=$( curl -s -H "Authorization: Bearer $OXEN_API_KEY " \\
"https://hub.oxen.ai/api/ai/queue/$GEN_ID" | jq -r '.status' )
echo "Status: $STATUS "
case $STATUS in succeeded | failed | cancelled ) break ;; esac
sleep 5
done
# Print the result.
curl -s -H "Authorization: Bearer $OXEN_API_KEY " \\
"https://hub.oxen.ai/api/ai/queue/$GEN_ID" | jq .
"""

SSE = """# Enqueue, capture the generation id.
GEN_ID=$( curl -s -X POST https://hub.oxen.ai/api/ai/queue \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer $OXEN_API_KEY " \\
-d '{
"model": "nano-banana-2",
"prompt": "<prompt>"
}' | jq -r '.generations[0].generation_id' )
# Stream the SSE channel, grab the data line that follows a
# media_generation_completed event for our id, and pretty-print it.
curl -sN -H "Authorization: Bearer $OXEN_API_KEY " https://hub.oxen.ai/api/events \\
| awk -v id="$GEN_ID" '
/^event: media_generation_completed$/ { expect=1; next }
/^data: / && expect {
payload = substr($0, 7)
if (index(payload, "\\"generation_id\\":\\"" id "\\"")) { print payload; exit }
expect = 0
}
' | jq .
"""


def run_snippet(server, snippet: str, model: str = "tiny-sd") -> str:  # type: ignore[no-untyped-def]
    script = snippet.replace(HOST, server.url).replace('"nano-banana-2"', f'"{model}"')
    done = subprocess.run(["bash", "-c", script], env={"OXEN_API_KEY": server.key, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


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
