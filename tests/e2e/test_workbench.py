"""The Workbench end to end in real headless Chromium (Playwright), against the real server.

Screenshots go to ``artifacts/screenshots/`` at the repository root (or ``$IMAGEHUB_SCREENSHOTS``);
the folder is printed at the end of the module.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ServerProcess, write_catalog
from PIL import Image
from playwright.sync_api import Browser, Page, Request, sync_playwright
from tests_helpers import wait_for_status

from imagehub.catalog.schema import NON_BLANK

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("IMAGEHUB_SCREENSHOTS")
                   or Path(__file__).resolve().parents[2] / "artifacts" / "screenshots")
ROW_META = {"generation_id", "enqueued_at", "started_at", "completed_at", "result_url", "images",
            "status", "error_message", "progress"}
PROMPT = 'a red circle, it\'s "quoted"'


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"workbench screenshots: {SCREENSHOTS}")


@dataclass
class Tab:
    page: Page
    server: ServerProcess
    requests: list[Request] = field(default_factory=list)
    keyed_from: int = 0
    """Index of the first request made after the key was entered."""

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def open(self, key: str | None = None) -> Tab:
        """The Workbench with ``key`` (default: the server's) entered and the models listed."""
        self.page.goto(f"{self.server.url}/")
        self.page.wait_for_load_state("networkidle")
        self.page.fill("#api-key", key or self.server.key)
        self.keyed_from = len(self.requests)
        self.page.click("#key-form button[type=submit]")
        self.page.wait_for_selector("#model option[value=tiny-sd]", state="attached")
        return self

    def pick(self, model: str) -> None:
        self.page.select_option("#model", model)
        self.page.wait_for_selector("[data-field=prompt] textarea")

    def open_advanced(self) -> None:
        details = self.page.locator("details.advanced")
        if details.get_attribute("open") is None:
            details.locator("summary").click()

    def run_queued(self, timeout: float = 30_000) -> str:
        """Run the form through the queue: the generation's id, once its job says succeeded."""
        self.page.check("input[name=mode][value=queue]")
        with self.page.expect_response(lambda r: r.url.endswith("/api/ai/queue")) as sent:
            self.page.click("#run")
        generation_id = sent.value.json()["generations"][0]["generation_id"]
        self.page.wait_for_selector(
            f".job[data-generation='{generation_id}'][data-status=succeeded]", timeout=timeout)
        return generation_id

    def snippet(self, name: str) -> str:
        self.page.click("[data-tab=api]")
        self.page.click(f"[data-snippet-tab={name}]")
        return self.page.locator(f"[data-snippet={name}] code").inner_text()


@pytest.fixture
def tab(browser: Browser, server: ServerProcess) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    opened = Tab(page, server)
    page.on("request", lambda request: opened.requests.append(request))
    yield opened
    context.close()


def _row_params(api: httpx.Client, generation_id: str) -> dict[str, Any]:
    row = wait_for_status(api, generation_id, {"succeeded"})
    return {k: v for k, v in row.items() if k not in ROW_META}


def _run(command: list[str], key: str) -> str:
    env = {**os.environ, "IMAGEHUB_API_KEY": key}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _pixels(url: str) -> bytes:
    return Image.open(io.BytesIO(httpx.get(url).content)).tobytes()


def _distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images' bytes (0–255)."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def _run_javascript(page: Page, code: str, key: str) -> dict[str, Any]:
    """The JavaScript snippet as written, in the page's engine (same origin), with ``process.env``
    and ``console.log`` supplied as Node would."""
    return page.evaluate(
        "async ([code, key]) => { const logged = [];"
        " const run = new (Object.getPrototypeOf(async function () {}).constructor)("
        "  'process', 'console', code);"
        " await run({ env: { IMAGEHUB_API_KEY: key } }, { log: (v) => logged.push(v) });"
        " return logged[0]; }", [code, key])


def test_run_see_compare_and_copy_the_api_calls(tab: Tab, api: httpx.Client) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")

    # the form follows the schema: basic fields first, the rest under Advanced by x-order
    schema = api.get("/api/ai/models/tiny-sd").json()["request_schema"]
    ordered = [name for name, _ in sorted(schema["properties"].items(),
                                          key=lambda kv: (kv[1].get("x-order", 99), kv[0]))]
    basic = page.locator(".schema-form > .basic > .field").evaluate_all(
        "els => els.map(e => e.dataset.field)")
    advanced = page.locator("details.advanced .field").evaluate_all("els => els.map(e => e.dataset.field)")
    assert basic == [f for f in ordered if f in schema["basic"]]
    assert advanced == [f for f in ordered if f not in schema["basic"]]
    assert basic[:3] == ["prompt", "aspect_ratio", "resolution"]
    assert {"negative_prompt", "num_inference_steps", "guidance_scale", "seed"} <= set(advanced)
    assert page.locator("[data-field=aspect_ratio] select option").count() == 15
    assert page.locator("[data-field=num_inference_steps] input").get_attribute("min") == "1"

    # fill and run synchronously; the image shows
    page.fill("[data-field=prompt] textarea", PROMPT)
    page.select_option("[data-field=aspect_ratio] select", label="16:9")
    tab.open_advanced()
    page.fill("[data-field=seed] input", "7")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    workbench = sent.value.json()
    sent_body = json.loads(sent.value.request.post_data or "{}")
    defaults = {k: spec["default"] for k, spec in schema["properties"].items() if "default" in spec}
    assert sent_body == {"model": "tiny-sd", **defaults, "prompt": PROMPT, "aspect_ratio": "16:9",
                         "seed": 7}
    assert sent_body["resolution"] == "512" and sent_body["num_inference_steps"] == 2
    page.wait_for_function("() => [...document.querySelectorAll('.result img')]"
                           ".some(i => i.complete && i.naturalWidth === 688)")
    tab.shot("01-sync-result")

    # the API tab: copy the cURL, then run every cURL variant and the Python snippet
    curl_sync = tab.snippet("curl-sync")
    page.click("[data-snippet=curl-sync] button.copy")
    page.wait_for_selector("[data-snippet=curl-sync] .copy-status:text('copied')")
    assert page.evaluate("navigator.clipboard.readText()") == curl_sync
    assert f"{tab.server.url}/api/ai/images/generate" in curl_sync
    assert "$IMAGEHUB_API_KEY" in curl_sync and tab.server.key not in curl_sync
    tab.shot("02-api-tab-curl")
    python_code = tab.snippet("python")
    assert "import requests" in python_code and tab.server.key not in python_code
    tab.shot("03-api-tab-python")
    curl_async, curl_sse = tab.snippet("curl-async"), tab.snippet("curl-sse")
    javascript = tab.snippet("javascript")
    assert "process.env.IMAGEHUB_API_KEY" in javascript and tab.server.key not in javascript

    from_curl = json.loads(_run(["bash", "-c", curl_sync], tab.server.key))
    from_python = json.loads(_run([sys.executable, "-c", python_code], tab.server.key))
    polled = _run(["bash", "-c", curl_async], tab.server.key)
    assert "Status: succeeded" in polled
    from_poll = json.loads(polled[polled.index("{"):])
    streamed = json.loads(_run(["bash", "-c", curl_sse], tab.server.key))
    from_javascript = _run_javascript(page, javascript, tab.server.key)
    assert streamed["status"] == "succeeded" and streamed["url"]

    # the same request: the history rows carry the same params; the same result: the same pixels
    reference = _row_params(api, workbench["generation_id"])
    assert reference["prompt"] == PROMPT and reference["seed"] == 7
    for generation_id in (from_curl["generation_id"], from_python["generation_id"],
                          from_javascript["generation_id"], from_poll["generation_id"],
                          streamed["generation_id"]):
        assert _row_params(api, generation_id) == reference
    pixels = _pixels(workbench["images"][0]["url"])
    for url in (from_curl["images"][0]["url"], from_python["images"][0]["url"],
                from_javascript["images"][0]["url"], from_poll["result_url"], streamed["url"]):
        assert _pixels(url) == pixels

    # a second run through the queue with another seed, then compare the two
    page.click("[data-tab=results]")
    page.fill("[data-field=seed] input", "8")
    tab.run_queued()
    page.wait_for_function("() => document.querySelectorAll('.result img').length === 2")
    # in queue mode the Python and JavaScript snippets enqueue and poll: the same again
    queued_python = json.loads(_run([sys.executable, "-c", tab.snippet("python")], tab.server.key))
    queued_javascript = _run_javascript(page, tab.snippet("javascript"), tab.server.key)
    for row in (queued_python, queued_javascript):
        assert row["status"] == "succeeded" and row["seed"] == 8 and row["prompt"] == PROMPT
    assert _pixels(queued_python["result_url"]) == _pixels(queued_javascript["result_url"])
    page.click("[data-tab=results]")
    for checkbox in page.locator(".result input.select").all():
        checkbox.check()
    page.click("#compare-selected")
    page.wait_for_function("() => [...document.querySelectorAll('.compare-item img')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length === 2")
    seeds = page.locator(".compare-item tr.diff th").all_inner_texts()
    assert seeds[:1] == ["seed"]
    tab.shot("04-compare")

    # re-run the first result: the same seed, the same pixels, a third result
    page.click("[data-tab=results]")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as rerun:
        page.locator(".result[data-seed='7'] button.rerun").first.click()
    assert json.loads(rerun.value.request.post_data or "{}") == sent_body
    page.wait_for_function("() => document.querySelectorAll('.result img').length === 3")
    assert _pixels(rerun.value.json()["images"][0]["url"]) == pixels

    # the key stayed in session storage: not in a URL, not in local storage, not in a cookie
    assert page.evaluate("sessionStorage.getItem('imagehub.apiKey')") == tab.server.key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert tab.requests and all(tab.server.key not in r.url for r in tab.requests)
    unsigned = [r.url for r in tab.requests[tab.keyed_from:] if "/api/" in r.url and "/api/files/" not in r.url
                and r.all_headers().get("authorization") != f"Bearer {tab.server.key}"]
    assert unsigned == []


def test_queue_progress_and_cancel(tab: Tab, api: httpx.Client) -> None:
    page = tab.open().page
    tab.pick("tiny-sd-slow")
    page.fill("[data-field=prompt] textarea", "a slow square")
    page.check("input[name=mode][value=queue]")
    page.select_option("#count", "2")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/queue")) as sent:
        page.click("#run")
    ids = [g["generation_id"] for g in sent.value.json()["generations"]]
    assert len(ids) == 2
    page.wait_for_selector(f".job[data-generation='{ids[1]}']")
    shown = page.locator(".job").evaluate_all("els => els.map(e => e.dataset.generation)")
    assert shown[:2] == ids  # in their order, on top
    first = page.locator(f".job[data-generation='{ids[0]}']")
    first.locator(".job-status").filter(has_text=re.compile(r"step \d+/40")).wait_for()
    assert 0 < float(first.locator("progress").evaluate("p => p.value")) < 1
    tab.shot("05-queue-progress")
    first.locator("button.cancel").click()
    page.wait_for_selector(f".job[data-generation='{ids[0]}'][data-status=cancelled]")
    page.locator(f".job[data-generation='{ids[1]}'] button.cancel").click()
    page.wait_for_selector(f".job[data-generation='{ids[1]}'][data-status=cancelled]")
    assert [wait_for_status(api, i, {"cancelled"})["status"] for i in ids] == ["cancelled"] * 2
    tab.shot("06-queue-cancelled")


def test_results_of_a_multi_generation_run_show_and_rerun_their_own_params(tab: Tab) -> None:
    """Rows echo the request's num_generations; a result's params leave it out, so the two
    results of one run differ only by seed, and re-running one makes one generation."""
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "two of them")
    page.check("input[name=mode][value=queue]")
    page.select_option("#count", "2")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/queue")) as sent:
        page.click("#run")
    assert json.loads(sent.value.request.post_data or "{}")["num_generations"] == 2
    ids = [g["generation_id"] for g in sent.value.json()["generations"]]
    results = [page.locator(f".result[data-generation='{i}']") for i in ids]
    for result in results:
        result.wait_for()
    shown = json.loads(results[0].locator("pre.params").text_content() or "{}")
    assert shown["prompt"] == "two of them" and "num_generations" not in shown
    for result in results:
        result.locator("input.select").check()
    page.click("#compare-selected")
    page.wait_for_selector(".compare-item")
    assert page.locator(".compare-item").first.locator("tr.diff th").all_inner_texts() == ["seed"]
    page.click("[data-tab=results]")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/queue")) as rerun:
        results[1].locator("button.rerun").click()
    body = json.loads(rerun.value.request.post_data or "{}")
    assert "num_generations" not in body and body["prompt"] == "two of them"
    assert len(rerun.value.json()["generations"]) == 1


def test_invalid_values_are_flagged_before_sending(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    tab.open_advanced()
    page.fill("[data-field=num_inference_steps] input", "0")
    assert page.locator("[data-field=num_inference_steps].invalid .field-error").inner_text() == \
        "num_inference_steps: must be ≥ 1"
    page.fill("[data-field=guidance_scale] input", "2.5")
    page.fill("[data-field=prompt] textarea", "   ")
    page.click("#run")
    assert "Fix the form first" in page.locator("#form-error").inner_text()
    assert page.locator("[data-field=prompt].invalid").count() == 1
    assert page.locator("[data-field=guidance_scale].invalid").count() == 0
    tab.shot("07-invalid-form")
    assert not [r for r in tab.requests if r.method == "POST"]


def test_history_lists_past_generations_and_refills_the_form(tab: Tab, api: httpx.Client) -> None:
    r = api.post("/api/ai/images/generate",
                 json={"model": "tiny-sd", "prompt": "from the history", "seed": 99,
                       "aspect_ratio": "3:4"})
    assert r.status_code == 200, r.text
    page = tab.open().page
    page.click("[data-tab=history]")
    row = page.locator("#history tbody tr", has_text="from the history").first
    row.wait_for()
    assert "succeeded" in row.inner_text() and "99" in row.inner_text()
    tab.shot("08-history")
    row.locator("button", has_text="Open in form").click()
    assert page.locator("#model").input_value() == "tiny-sd"
    assert page.locator("[data-field=prompt] textarea").input_value() == "from the history"
    assert page.locator("[data-field=seed] input").input_value() == "99"
    assert page.locator("[data-field=aspect_ratio] select option:checked").inner_text() == "3:4"


def test_a_new_tab_does_not_know_the_key(browser: Browser, tab: Tab) -> None:
    tab.open()
    assert tab.page.evaluate("sessionStorage.getItem('imagehub.apiKey')") == tab.server.key
    other = browser.new_context().new_page()
    try:
        other.goto(f"{tab.server.url}/")
        assert other.evaluate("sessionStorage.getItem('imagehub.apiKey')") is None
        other.wait_for_selector("#model-info:text('enter an API key')")
    finally:
        other.context.close()


def test_form_widgets_follow_the_schema(tab: Tab, tmp_path: Path) -> None:
    """nano-banana-2 (no provider configured here): toggles, tri-state booleans, string enums,
    an image field fed by an upload; the form still builds the request, the server names a bad
    field (400), then says 503."""
    upload = tmp_path / "dot.png"
    Image.new("RGB", (8, 8), "red").save(upload)
    page = tab.open().page
    tab.pick("nano-banana-2")
    assert "unavailable" in page.locator("#model-info").inner_text()
    basic = page.locator(".schema-form > .basic > .field").evaluate_all(
        "els => els.map(e => e.dataset.field)")
    assert basic == ["prompt", "aspect_ratio", "resolution", "input_image"]
    tab.open_advanced()
    assert page.locator("[data-field=enable_web_search] input[type=checkbox]").is_checked()
    assert page.locator("[data-field=google_search] select option:checked").inner_text() == "—"
    assert page.locator("[data-field=safety_tolerance] select option:checked").inner_text() == "6"
    page.fill("[data-field=prompt] textarea", "a cat")
    page.uncheck("[data-field=enable_web_search] input[type=checkbox]")
    page.select_option("[data-field=thinking_level] select", label="high")
    page.set_input_files("[data-field=input_image] input[type=file]", str(upload))
    page.wait_for_selector("[data-field=input_image] .uploads img")
    page.fill("[data-field=input_image] input[type=url]", "https://127.0.0.1/a.png")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    body = json.loads(sent.value.request.post_data or "{}")
    assert body["enable_web_search"] is False and "google_search" not in body
    assert body["safety_tolerance"] == "6" and body["thinking_level"] == "high"
    assert body["input_image"][0] == "https://127.0.0.1/a.png"
    assert body["input_image"][1].startswith("data:image/png;base64,")
    # no provider is configured, but the model's fields are known: a bad one is named first
    # (a loopback URL is never fetched), and the page shows the server's one-line reason
    assert sent.value.status == 400
    page.wait_for_selector("#form-error:text('400 invalid_params')")
    assert "input_image" in page.locator("#form-error").inner_text()
    page.fill("[data-field=input_image] input[type=url]", "")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as again:
        page.click("#run")
    assert json.loads(again.value.request.post_data or "{}")["input_image"] == [body["input_image"][1]]
    assert again.value.status == 503
    page.wait_for_selector("#form-error:text('503 model_unavailable')")
    tab.shot("09-unavailable-model-form")
    curl = tab.snippet("curl-sync")
    assert '"thinking_level": "high"' in curl and "data:image/png;base64," in curl


# ---- regressions ------------------------------------------------------------------------------

def _png(path: Path, size: int, noise: bool = False) -> Path:
    """A PNG of ``size``×``size``: random noise (does not compress: a large upload) or flat red."""
    image = (Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)) if noise
             else Image.new("RGB", (size, size), "red"))
    image.save(path)
    return path


def _bash(script: str, key: str, folder: Path) -> str:
    """A snippet run from a file, as pasted: bash -c would make a large one an argument."""
    path = folder / "snippet.sh"
    path.write_text(script)
    return _run(["bash", str(path)], key)


def _upload(tab: Tab, path: Path) -> str:
    """Choose ``path`` for tiny-sd's input_image; the data URI the page made of it."""
    tab.page.set_input_files("[data-field=input_image] input[type=file]", str(path))
    return tab.page.locator("[data-field=input_image] .uploads img").get_attribute("src") or ""


def _form_module(page: Page, call: str) -> Any:
    return page.evaluate("async () => { const form = await import('/workbench/form.js');"
                         f" return {call}; }}")


def test_large_uploads_go_through_every_curl_snippet(tab: Tab, api: httpx.Client,
                                                     tmp_path: Path) -> None:
    """A body past 128 KiB as one argument fails with "Argument list too long": the snippets read
    it from a heredoc; the async ones follow every generation."""
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", PROMPT)
    tab.open_advanced()
    page.fill("[data-field=seed] input", "21")
    data_uri = _upload(tab, _png(tmp_path / "noise.png", 256, noise=True))
    assert len(data_uri) > 200_000
    curl_sync = tab.snippet("curl-sync")
    assert "<<'JSON'" in curl_sync and " -d '" not in curl_sync and curl_sync.startswith("curl -sS ")
    from_curl = json.loads(_bash(curl_sync, tab.server.key, tmp_path))
    row = wait_for_status(api, from_curl["generation_id"], {"succeeded"})
    assert row["input_image"].endswith(f"...({len(data_uri)} chars)") and row["seed"] == 21

    page.click("[data-tab=results]")
    page.select_option("#count", "2")
    polled = _bash(tab.snippet("curl-async"), tab.server.key, tmp_path)
    assert polled.count("Status: succeeded") == 2
    ids = re.findall(r'"generation_id": "([^"]+)"', polled)
    assert [wait_for_status(api, i, {"succeeded"})["seed"] for i in ids] == [21, 22]
    streamed = _bash(tab.snippet("curl-sse"), tab.server.key, tmp_path)
    assert streamed.count('"status": "succeeded"') == 2

    # a short body stays one -d argument
    page.click("[data-tab=results]")
    page.fill("[data-field=input_image] input[type=url]", "https://example.com/a.png")
    assert "\n  -d '{" in tab.snippet("curl-sync")


def test_curl_async_snippets_stop_when_the_enqueue_is_refused(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "refused")
    for name in ("curl-async", "curl-sse"):
        done = _refused(tab.snippet(name))
        assert done.stdout.startswith("Not enqueued: {") and "unknown API key" in done.stdout, \
            done.stdout
        assert "Status:" not in done.stdout
        assert done.returncode == 1  # a script can tell
    done = _refused(tab.snippet("curl-sync"))  # prints the refusal (any curl: no --fail-with-body)
    assert json.loads(done.stdout)["error"]["type"] == "unauthenticated", done


def _refused(snippet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "IMAGEHUB_API_KEY": "not-a-key"})


def test_sync_generations_carry_their_own_seeds(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "two at once")
    tab.open_advanced()
    page.fill("[data-field=seed] input", "40")
    page.select_option("#count", "2")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    images = sent.value.json()["images"]
    page.wait_for_selector(".result[data-index='1']")
    seeds = page.locator(".result").evaluate_all(
        "els => els.map(e => [Number(e.dataset.index), e.dataset.seed])")
    assert seeds == [[0, "40"], [1, "41"]]  # in their order: image 0 first
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as rerun:
        page.locator(".result[data-index='1'] button.rerun").click()
    body = json.loads(rerun.value.request.post_data or "{}")
    assert body["seed"] == 41 and "n" not in body
    # image 1 again (batched and single runs differ by rounding only), not image 0
    again = _pixels(rerun.value.json()["images"][0]["url"])
    near, far = (_distance(again, _pixels(image["url"])) for image in (images[1], images[0]))
    assert near < 1 < far


def test_uploaded_inputs_rerun_and_reopen(browser: Browser, tab: Tab, api: httpx.Client,
                                          tmp_path: Path) -> None:
    """Rows echo an upload shortened; this tab puts back what it sent, another tab asks for the
    file again."""
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "from an upload")
    tab.open_advanced()
    page.fill("[data-field=seed] input", "5")
    data_uri = _upload(tab, _png(tmp_path / "red.png", 16))
    tab.run_queued()
    page.wait_for_selector(".result")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/queue")) as rerun:
        page.locator(".result button.rerun").click()
    assert rerun.value.status == 200
    assert json.loads(rerun.value.request.post_data or "{}")["input_image"] == data_uri
    rerun_id = rerun.value.json()["generations"][0]["generation_id"]
    echoed = wait_for_status(api, rerun_id, {"succeeded"})["input_image"]
    assert echoed.endswith(f"...({len(data_uri)} chars)")
    page.wait_for_function("() => document.querySelectorAll('.result').length === 2")
    assert "chars)" not in page.locator("#gallery").inner_text()
    for checkbox in page.locator(".result input.select").all():
        checkbox.check()
    page.click("#compare-selected")
    cells = page.locator(".compare-item tr", has=page.locator("th", has_text="input_image"))
    assert cells.locator("td").all_inner_texts() == ['"uploaded image"'] * 2

    # History in this tab: the upload comes back; in another tab: choose the file again
    page.click("[data-tab=history]")
    page.locator(f"#history tbody tr[data-generation='{rerun_id}'] button",
                 has_text="Open in form").click()
    assert page.locator("[data-field=input_image] .uploads img").get_attribute("src") == data_uri
    assert page.locator("#form-error").inner_text() == ""
    other = Tab(browser.new_context().new_page(), tab.server).open()
    try:
        other.page.click("[data-tab=history]")
        other.page.locator(f"#history tbody tr[data-generation='{rerun_id}'] button",
                           has_text="Open in form").click()
        assert "choose the file again" in other.page.locator("#form-error").inner_text()
        assert other.page.locator("[data-field=input_image] .uploads img").count() == 0
        assert other.page.locator("[data-field=input_image] input[type=url]").input_value() == ""
        assert "input_image" not in other.snippet("curl-sync")
    finally:
        other.page.context.close()


def test_queue_runs_by_polling_when_the_event_stream_is_down(tab: Tab) -> None:
    tab.page.route("**/api/events", lambda route: route.abort())
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "no stream")
    tab.run_queued()
    page.wait_for_selector(".result img")
    assert page.locator("#run").is_enabled()
    assert "followed by polling" in page.locator("#events-state").inner_text()


def test_a_refused_key_says_so_and_hides_the_models(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    assert page.locator("#key-state").inner_text() == "key set for this tab"
    page.fill("#api-key", "  ih_wrong  ")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-state:text('key refused: unknown API key')")
    assert page.locator("#model option").count() == 1
    assert page.locator("#fields .field").count() == 0
    # not kept: a reload does not send it again, and the field keeps it to be corrected
    assert page.evaluate("sessionStorage.getItem('imagehub.apiKey')") is None
    assert page.locator("#api-key").input_value() == "ih_wrong"
    page.fill("#api-key", f"  Bearer {tab.server.key} \n")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#model option[value=tiny-sd]", state="attached")
    assert page.locator("#key-state").inner_text() == "key set for this tab"
    assert page.evaluate("sessionStorage.getItem('imagehub.apiKey')") == tab.server.key


def test_one_input_image_is_a_url_as_typed_or_a_file(tab: Tab, tmp_path: Path) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "a url")
    tab.open_advanced()
    url_input = page.locator("[data-field=input_image] input[type=url]")
    url_input.fill("https://example.com/a b.png")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    sent_body = json.loads(sent.value.request.post_data or "{}")
    assert sent_body["input_image"] == "https://example.com/a b.png"
    assert sent.value.status == 400
    page.wait_for_selector("#form-error:text('input_image')")
    data_uri = _upload(tab, _png(tmp_path / "red.png", 16))
    assert url_input.input_value() == ""
    body = json.loads(tab.snippet("curl-sync").split("-d ", 1)[1].strip("'"))
    assert body["input_image"] == data_uri
    page.click("[data-tab=results]")
    url_input.fill("https://example.com/b.png")
    assert page.locator("[data-field=input_image] .uploads img").count() == 0
    assert page.locator("[data-field=input_image] input[type=file]").input_value() == ""
    assert '"input_image": "https://example.com/b.png"' in tab.snippet("curl-sync")


def test_seeds_stop_at_the_largest_exact_browser_integer(tab: Tab, api: httpx.Client) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "a big seed")
    tab.open_advanced()
    seed = page.locator("[data-field=seed]")
    assert seed.locator("input").get_attribute("max") == "9007199254740991"
    assert "2^53" in seed.locator(".hint").inner_text()
    seed.locator("input").fill("9223372036854775807")
    assert seed.locator(".field-error").inner_text() == "seed: must be ≤ 9007199254740991"
    seed.locator("input").fill("9007199254740991")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    assert '"seed":9007199254740991' in (sent.value.request.post_data or "")
    assert sent.value.status == 200
    row = wait_for_status(api, sent.value.json()["generation_id"], {"succeeded"})
    assert row["seed"] == 2**53 - 1


def test_value_messages(tab: Tab) -> None:
    page = tab.open().page
    check = "form.checkValue('f', {spec}, {value}, false)"
    cases = [("{type: 'integer'}", "'x'", "not an integer"),
             ("{type: ['number', 'boolean']}", "'x'", "not a number or a boolean"),
             (f"{{type: 'string', pattern: {json.dumps(NON_BLANK)}}}", "'  '", "must not be empty"),
             (f"{{type: 'string', pattern: {json.dumps(NON_BLANK)}}}", "'\\u200b\\ufeff'",
              "must not be empty"),
             ("{type: 'string', pattern: '^a'}", "'b'", "does not match the pattern ^a")]
    for spec, value, message in cases:
        assert _form_module(page, check.format(spec=spec, value=value)) == message


def test_without_a_key_the_page_asks_for_one_quietly(browser: Browser, server: ServerProcess) -> None:
    """A server with auth answers the page's first model call 401: the page asks for a key, and
    logs nothing but that refused request (no script error, no favicon 404)."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{server.url}/")
        page.wait_for_selector("#model-info:text('Enter an API key above')")
        page.wait_for_load_state("networkidle")
        assert [e for e in errors if "401" not in e] == [], errors
        assert page.locator("#key-state").inner_text() == "this server needs a key"
    finally:
        page.context.close()


def test_a_server_without_auth_needs_no_key(browser: Browser, tmp_path: Path,
                                            tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir)
    server = ServerProcess(tmp_path, {"IMAGEHUB_AUTH_ENABLED": "false"}).start()
    page = browser.new_context().new_page()
    try:
        page.goto(f"{server.url}/")
        page.wait_for_selector("#model option[value='tiny-sd']", state="attached")
        assert page.locator("#key-state").inner_text() == "no key needed here"
    finally:
        page.context.close()
        server.stop()


# ---- found by the Workbench bug bash (2026-11-28) ---------------------------------------------------

def test_a_key_revoked_mid_session_is_said_in_the_header(tab: Tab) -> None:
    """A 401 on any call (a run, the history), not only the model list, says the key was refused
    in the header, stops the event stream and clears the models; Forget clears them too."""
    key = tab.server.cli("keys", "create", "--name", "revoked-mid-session").stdout.strip()
    page = tab.open(key).page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "before the revocation")
    tab.server.cli("keys", "revoke", key[:10])
    page.click("#run")
    page.wait_for_selector("#key-state:text('key refused: API key')")
    assert "was revoked" in page.locator("#key-state").inner_text()
    assert page.locator("#model option").count() == 1 and page.locator("#fields .field").count() == 0
    assert page.locator("#events-state").inner_text() == ""
    tab.open()  # a good key again, then Forget: no model stays usable
    tab.pick("tiny-sd")
    page.click("#key-forget")
    assert page.locator("#key-state").inner_text() == "key forgotten"
    assert page.locator("#model option").count() == 1 and page.locator("#fields .field").count() == 0


def test_rerun_waits_for_the_run_in_flight(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "first")
    page.click("#run")
    page.wait_for_selector(".result")
    tab.pick("tiny-sd-slow")
    page.fill("[data-field=prompt] textarea", "slow one")
    posts = len([r for r in tab.requests if r.method == "POST"])
    page.click("#run")
    page.wait_for_function("() => document.querySelector('#run').disabled")
    page.locator(".result button.rerun").first.click()
    assert "A run is in progress" in page.locator("#form-error").inner_text()
    assert page.locator("[data-field=prompt] textarea").input_value() == "slow one"
    page.wait_for_function("() => !document.querySelector('#run').disabled", timeout=60_000)
    assert len([r for r in tab.requests if r.method == "POST"]) == posts + 1


def test_compare_shows_the_current_selection(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "three to compare")
    page.select_option("#count", "3")
    page.click("#run")
    page.wait_for_function("() => document.querySelectorAll('.result').length === 3")
    boxes = page.locator(".result input.select").all()
    for box in boxes:
        box.check()
    page.click("#compare-selected")
    assert page.locator(".compare-item").count() == 3
    page.click("[data-tab=results]")
    boxes[0].uncheck()
    boxes[1].uncheck()
    page.click("[data-tab=compare]")
    assert page.locator(".compare-item").count() == 0
    assert "Select 2–4 results" in page.locator("#compare").inner_text()


def test_a_long_prompt_is_shown_cut_short(tab: Tab) -> None:
    prompt = "a red circle 🍌 " * 400  # 6,000 characters (the server takes up to 32,000)
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", prompt)
    page.click("#run")
    page.wait_for_selector(".result")
    shown = page.locator(".result .prompt").inner_text()
    assert shown.endswith(f"… ({len(prompt)} characters)") and len(shown) < 340
    page.click("[data-tab=history]")
    page.wait_for_selector("#history tbody tr[data-generation]")
    assert len(page.locator("#history tbody tr td.prompt").first.inner_text()) < 240
    page.fill("[data-field=prompt] textarea", "x" * 32_001)
    assert "at most 32000 characters (this is 32001)" in \
        page.locator("[data-field=prompt] .field-error").inner_text()


def test_the_header_fits_a_phone(browser: Browser, server: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/")
        page.fill("#api-key", server.key)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#model option[value=tiny-sd]", state="attached")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        context.close()


def test_the_python_snippet_prints_a_refusal(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "refused")
    for mode, said in (("sync", "Not generated: 401"), ("queue", "Not enqueued: 401")):
        page.check(f"input[name=mode][value={mode}]")
        done = subprocess.run([sys.executable, "-c", tab.snippet("python")], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, "IMAGEHUB_API_KEY": "not-a-key"})
        assert done.returncode == 1 and said in done.stderr and "unknown API key" in done.stderr, \
            done.stderr
        assert "Traceback" not in done.stderr
        page.click("[data-tab=results]")


def test_reopening_a_run_whose_upload_is_gone_asks_once(browser: Browser, tab: Tab,
                                                         tmp_path: Path) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "from an upload, reopened elsewhere")
    _upload(tab, _png(tmp_path / "red.png", 16))
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    generation_id = sent.value.json()["generation_id"]
    other = Tab(browser.new_context().new_page(), tab.server).open()
    try:
        other.page.click("[data-tab=history]")
        other.page.locator(f"#history tbody tr[data-generation='{generation_id}'] button",
                           has_text="Open in form").click()
        other.page.click("#run")
        assert "choose it again, or press Run again" in other.page.locator("#form-error").inner_text()
        with other.page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as ran:
            other.page.click("#run")
        assert ran.value.status == 200
        assert "input_image" not in json.loads(ran.value.request.post_data or "{}")
    finally:
        other.page.context.close()


def test_revoking_the_key_shows_in_the_header_with_no_action(tab: Tab) -> None:
    """The server ends a revoked key's event stream; the page's reconnect is refused, and the
    header says so without any click."""
    key = tab.server.cli("keys", "create", "--name", "revoked-while-idle").stdout.strip()
    page = tab.open(key).page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "opens the stream")
    page.check("input[name=mode][value=queue]")
    page.click("#run")
    page.wait_for_selector("#events-state:text('events: live')")
    page.wait_for_selector(".job[data-status=succeeded]")
    tab.server.cli("keys", "revoke", key[:10])
    page.wait_for_selector("#key-state:text('key refused: API key')", timeout=15_000)
    assert page.locator("#model option").count() == 1


# ---- found by the second Workbench audit (2026-11-28) ---------------------------------------------

def _queue_slow(api: httpx.Client, prompt: str, n: int = 1) -> list[str]:
    """``n`` generations that stay open for the test's length (150 steps each; it cancels them)."""
    answer = api.post("/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": prompt,
                                             "num_generations": n, "num_inference_steps": 150})
    assert answer.status_code == 200, answer.text
    return [g["generation_id"] for g in answer.json()["generations"]]


def _job_polls(tab: Tab, generation_id: str) -> int:
    return len([r for r in tab.requests if r.url.endswith(f"/api/ai/queue/{generation_id}")])


def test_a_reload_follows_the_keys_open_jobs(tab: Tab, api: httpx.Client) -> None:
    """Jobs queued before the page was (re)loaded, here or by a script, show as jobs: followed
    to their end and cancellable."""
    page = tab.open().page
    ids = _queue_slow(api, "queued before the reload", 2)
    page.reload()
    for generation_id in ids:
        page.wait_for_selector(f".job[data-generation='{generation_id}']")
    shown = page.locator(".job").evaluate_all("els => els.map(e => e.dataset.generation)")
    assert shown[:2] == ids
    page.locator(f".job[data-generation='{ids[0]}'] button.cancel").click()
    page.wait_for_selector(f".job[data-generation='{ids[0]}'][data-status=cancelled]")
    assert wait_for_status(api, ids[0], {"cancelled"})["status"] == "cancelled"
    api.delete(f"/api/ai/queue/{ids[1]}")
    page.wait_for_selector(f".job[data-generation='{ids[1]}'][data-status=cancelled]")


def test_forget_and_another_key_take_the_old_keys_jobs_and_results_away(
        tab: Tab, api: httpx.Client) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "made under the first key")
    page.click("#run")
    page.wait_for_selector(".result")
    (generation_id,) = _queue_slow(api, "still running at Forget")
    page.reload()  # the job shows (it was queued by a script)
    page.wait_for_selector(f".job[data-generation='{generation_id}']")
    page.click("#key-forget")
    assert page.locator(".job").count() == 0 and page.locator(".result").count() == 0
    polls = _job_polls(tab, generation_id)
    page.wait_for_timeout(2500)  # the job polled each second while it was shown
    assert _job_polls(tab, generation_id) == polls
    # another key: the first key's page does not carry over either
    tab.open()
    page.wait_for_selector(f".job[data-generation='{generation_id}']")
    other = tab.server.cli("keys", "create", "--name", "another-key",  # not this namespace's jobs
                           "--namespace", "another-namespace").stdout.strip()
    page.fill("#api-key", other)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-state:text('key set for this tab')")
    assert page.locator(".job").count() == 0
    api.delete(f"/api/ai/queue/{generation_id}")


def test_history_results_can_be_compared(tab: Tab, api: httpx.Client) -> None:
    """A past sync run of two images (one row, seed 61): both images join the results, image 1
    with its own seed, 62."""
    made = api.post("/api/ai/images/generate",
                    json={"model": "tiny-sd", "prompt": "compared from the history", "seed": 61,
                          "n": 2})
    assert made.status_code == 200, made.text
    page = tab.open().page
    page.click("[data-tab=history]")
    row = page.locator("#history tbody tr", has_text="compared from the history").first
    row.locator("button.to-results").click()
    assert row.locator("button.to-results").is_disabled()
    page.click("[data-tab=results]")
    assert page.locator(".result").evaluate_all(
        "els => els.map(e => [e.dataset.index, e.dataset.seed])") == [["0", "61"], ["1", "62"]]
    for box in page.locator(".result input.select").all():
        box.check()
    page.click("#compare-selected")
    assert page.locator(".compare-item").count() == 2
    assert page.locator(".compare-item").first.locator("tr.diff th").all_inner_texts() == ["seed"]


def test_a_refusal_naming_a_field_is_shown_at_the_field(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "an ftp image")
    tab.open_advanced()
    page.fill("[data-field=input_image] input[type=url]", "ftp://example.com/a.png")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate")) as sent:
        page.click("#run")
    assert sent.value.status == 400
    page.wait_for_selector("[data-field=input_image].invalid")  # the page flags it after the answer
    field = page.locator("[data-field=input_image]")
    assert "invalid" in (field.get_attribute("class") or "")
    assert field.locator(".field-error").inner_text().startswith("input_image: ")
    assert "ftp://example.com/a.png" in field.locator(".field-error").inner_text()
    assert page.evaluate("document.activeElement.closest('[data-field]').dataset.field") == \
        "input_image"


def test_an_unreachable_server_is_said_in_words(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "no answer")
    page.route("**/api/ai/images/generate", lambda route: route.abort())
    page.click("#run")
    page.wait_for_selector("#form-error:text('the server did not answer')")
    assert "TypeError" not in page.locator("#form-error").inner_text()


def test_the_api_tab_says_when_the_request_would_be_refused(tab: Tab) -> None:
    page = tab.open().page
    page.click("[data-tab=api]")
    assert "no model is picked" in page.locator("#snippets-warning").inner_text()
    page.click("[data-tab=results]")
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "fine")
    page.click("[data-tab=api]")
    assert page.locator("#snippets-warning").inner_text() == ""
    page.click("[data-tab=results]")
    tab.open_advanced()
    page.fill("[data-field=num_inference_steps] input", "500")
    page.click("[data-tab=api]")
    assert "num_inference_steps: must be ≤" in page.locator("#snippets-warning").inner_text()


def test_finished_jobs_can_be_cleared_and_their_results_stay(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "a job to clear")
    generation_id = tab.run_queued()
    page.wait_for_selector(f".result[data-generation='{generation_id}']")
    page.click("#jobs-clear")
    assert page.locator(f".job[data-generation='{generation_id}']").count() == 0
    assert page.locator(f".result[data-generation='{generation_id}']").count() == 1


def test_tabs_answer_the_arrow_keys_and_results_have_their_own_labels(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd")
    page.fill("[data-field=prompt] textarea", "two labels")
    page.select_option("#count", "2")
    page.click("#run")
    page.wait_for_selector(".result[data-index='1']")
    labels = page.locator(".result input.select").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))")
    assert len(set(labels)) == 2 and all("tiny-sd" in label for label in labels), labels
    page.focus("[data-tab=results]")
    page.keyboard.press("ArrowRight")
    assert page.locator("[data-tab=compare]").get_attribute("aria-selected") == "true"
    assert page.locator("#tab-compare").is_visible()
    page.keyboard.press("End")
    assert page.locator("#tab-api").is_visible()
    page.keyboard.press("ArrowRight")  # round to the first
    assert page.locator("#tab-results").is_visible()


def test_a_run_that_ends_after_forget_stays_off_the_page(tab: Tab) -> None:
    page = tab.open().page
    tab.pick("tiny-sd-slow")
    page.fill("[data-field=prompt] textarea", "ends after Forget")
    with page.expect_response(lambda r: r.url.endswith("/api/ai/images/generate"),
                              timeout=120_000) as sent:
        page.click("#run")
        page.click("#key-forget")
    assert sent.value.status == 200
    page.wait_for_function("() => !document.querySelector('#run').disabled")
    assert page.locator(".result").count() == 0
    assert page.locator("#key-state").inner_text() == "key forgotten"
