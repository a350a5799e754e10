"""The API tab's quoting, run for real: ``snippets.js`` in headless Chromium builds the text,
bash and Python read it back. Nasty strings must come out exactly as they went in."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import free_port
from fastapi import FastAPI
from playwright.sync_api import Page, sync_playwright

from imagehub.api.routes import workbench

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NASTY = ["it's", 'say "hi"', "back\\slash", "$HOME `id` $(id)", "tab\tnew\nline", "ünïcødé ✓ 😀",
         "'; rm -rf / #", "%s {} [] \\n", ""]


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    """The Workbench's assets served by its own router (no hub needed) and one Chromium page."""
    app = FastAPI()
    app.include_router(workbench.router)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"http://127.0.0.1:{port}/workbench/snippets.js").status_code == 200
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS, headless=True)
        tab = browser.new_page()
        tab.goto(f"http://127.0.0.1:{port}/workbench/index.html")
        yield tab
        browser.close()
    server.should_exit = True
    thread.join(10)


def _call(page: Page, function: str, *args: Any) -> str:
    return page.evaluate(
        "async ([fn, args]) => (await import('/workbench/snippets.js'))[fn](...args)",
        [function, list(args)])


@pytest.mark.parametrize("text", NASTY)
def test_shell_quote_round_trips_through_bash(page: Page, text: str) -> None:
    quoted = _call(page, "shellQuote", text)
    echoed = subprocess.run(["bash", "-c", f"printf '%s' {quoted}"], capture_output=True,
                            check=True).stdout.decode()
    assert echoed == text


def test_python_literal_round_trips_through_python(page: Page) -> None:
    body = {"prompt": NASTY, "n": 2, "scale": 7.5, "flag": True, "off": False, "none": None,
            "nested": {"list": [1, [2, {"x": "y"}]], "empty": {}, "nothing": []}}
    literal = _call(page, "pythonLiteral", body)
    read_back = subprocess.run([sys.executable, "-c", f"import json; print(json.dumps({literal}))"],
                               capture_output=True, text=True, check=True).stdout
    assert json.loads(read_back) == body


def test_curl_body_is_the_json_it_was_given(page: Page) -> None:
    body = {"model": "m", "prompt": "it's \"odd\" $HOME\nline two"}
    curl = _call(page, "curlSync", "http://host", body)
    # swap curl for a printer of its -d argument, and let bash parse everything else as written
    printed = subprocess.run(["bash", "-c", "curl() { while [ $# -gt 0 ]; do [ \"$1\" = -d ] && "
                              "printf '%s' \"$2\"; shift; done; }\n" + curl],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(printed) == body
