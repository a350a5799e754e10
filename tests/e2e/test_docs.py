"""``/llms.txt`` and every page it lists, served as Markdown by the real server."""

from __future__ import annotations

import re
from importlib import resources

import httpx

from conftest import ServerProcess

PAGES = {"quickstart", "api-conventions", "api-generate", "api-edit", "api-queue-enqueue",
         "api-queue-get", "api-queue-list", "api-queue-cancel", "api-history", "api-events",
         "api-models", "api-files", "api-openai-images", "workbench", "cli", "python-client",
         "deployment"}


def test_llms_txt_lists_every_page_and_each_is_markdown(server: ServerProcess) -> None:
    index = httpx.get(f"{server.url}/llms.txt")
    assert index.status_code == 200 and index.text.startswith("# imagehub\n")
    links = re.findall(r"^- \[(.+?)\]\((\S+?)\)", index.text, re.MULTILINE)
    slugs = {url.rsplit("/", 1)[1][:-3] for _, url in links if "/docs/models/" not in url}
    shipped = {p.name[:-3] for p in resources.files("imagehub.docs").iterdir() if p.name.endswith(".md")}
    assert PAGES <= slugs == shipped
    assert {"tiny-sd", "tiny-sd-slow"} <= {url.rsplit("/", 1)[1][:-3] for _, url in links
                                           if "/docs/models/" in url}
    for title, url in links:
        page = httpx.get(url)
        assert page.status_code == 200, url
        assert page.headers["content-type"].startswith("text/markdown")
        assert page.text.startswith("# ") and page.text.splitlines()[0].lstrip("# ") == title or \
            "/docs/models/" in url


def test_api_pages_name_their_endpoint() -> None:
    for slug, endpoint in {"api-generate": "POST /api/ai/images/generate",
                           "api-queue-enqueue": "POST /api/ai/queue",
                           "api-queue-cancel": "DELETE /api/ai/queue/{generation_id}",
                           "api-events": "GET /api/events",
                           "api-openai-images": "POST /api/ai/images/generations"}.items():
        text = resources.files("imagehub.docs").joinpath(f"{slug}.md").read_text()
        assert endpoint in text.splitlines()[0]
