"""The shell snippets of ../shared/seed/nano-banana-2.txt, read from the page itself.

The page's text was extracted from a web page that added stray spaces (API.md's preamble):
``GEN_ID = $(`` and ``"…/queue/ $GEN_ID "`` and ``-v id=" $GEN_ID "``. Those are read without
them; everything else (the trailing space after the key included) is run as written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SEED_PAGE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "nano-banana-2.txt"
HOST = "https://hub.oxen.ai"
_STARTS = ("curl -X POST", "# Enqueue", "curl -H ")
_STOPS = ("Fetch model details",)
_STOP_PREFIXES = ("The models endpoint", "Request parameters")
_PROSE = re.compile(r"^See the [a-z ]+ reference for more details\. ")


def _repaired_lines() -> list[str]:
    text = SEED_PAGE.read_text()
    text = re.sub(r"\b(GEN_ID|STATUS) = \$\(", r"\1=$(", text)
    text = text.replace('/queue/ $GEN_ID "', '/queue/$GEN_ID"').replace('id=" $GEN_ID "', 'id="$GEN_ID"')
    return [_PROSE.sub("", line) for line in text.splitlines()]


def snippets() -> dict[str, str]:
    """``sync``, ``sync_full``, ``poll``, ``poll_full``, ``sse``, ``sse_full``, ``model``."""
    found: list[list[str]] = []
    for line in _repaired_lines():
        if line in _STOPS or line.startswith(_STOP_PREFIXES):
            found.append([])  # prose: the snippet before it has ended
        elif line.startswith(_STARTS) and not (found and found[-1] and found[-1][-1].endswith("\\")):
            found.append([line])
        elif found and found[-1]:
            found[-1].append(line)
    named: dict[str, str] = {}
    for lines in filter(None, found):
        script = "\n".join(lines) + "\n"
        kind = "sse" if "/api/events" in script else "poll" if "while true" in script else \
            "model" if "/api/ai/models/" in script else "sync"
        named[kind + ("_full" if "safety_tolerance" in script else "")] = script
    return named


def run_snippet(server, snippet: str, model: str = "tiny-sd") -> str:  # type: ignore[no-untyped-def]
    """Run ``snippet`` with bash, changing only the host, the key and the model id."""
    script = snippet.replace(HOST, server.url).replace("nano-banana-2", model)
    done = subprocess.run(["bash", "-c", script], env={"OXEN_API_KEY": server.key, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout
