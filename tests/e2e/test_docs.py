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


def test_a_model_page_lists_its_fields_as_a_table(server: ServerProcess) -> None:
    """Each field on one row: JSON type(s), default as JSON (or "required"), the values it takes
    and its description, five cells each."""
    page = httpx.get(f"{server.url}/docs/models/tiny-sd.md").text
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines()
            if line.startswith("| `")}
    assert rows["prompt"].startswith("| `prompt` | string | required |  | Text description")
    assert "| `num_inference_steps` | integer | `2` | 1 to 150 |" in rows["num_inference_steps"]
    assert '| `aspect_ratio` | string | `"auto"` | `"auto"`, `"1:1"`, ' in rows["aspect_ratio"]
    assert "| `seed` | integer | \u2013 | 0 to " in rows["seed"]
    assert "| `input_image` | string | \u2013 |  | An image to start from" in rows["input_image"]
    for line in rows.values():
        assert line.count(" | ") == 4 and line.endswith(" |"), line
    assert "\\u2013" not in page and "['" not in page
    remote = httpx.get(f"{server.url}/docs/models/nano-banana-2.md").text
    assert ("| `input_image` | string or array | \u2013 | one, or a list of up to 14 | Reference "
            "images") in remote


def test_every_setting_is_in_the_deployment_or_gpu_serving_tables() -> None:
    from imagehub.config import Settings

    docs = resources.files("imagehub.docs")
    tables = "".join(docs.joinpath(page).read_text() for page in ("deployment.md", "gpu-serving.md"))
    rows = "\n".join(line for line in tables.splitlines() if line.startswith("| `"))
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in rows]
    assert not missing, f"settings in no table of deployment.md or gpu-serving.md: {missing}"


def test_with_a_public_url_the_links_use_it_whatever_the_host_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = ServerProcess(tmp_path / "data",
                           {"IMAGEHUB_PUBLIC_URL": "https://images.example.com/"}).start()
    try:
        for path in ("/llms.txt", "/docs/models/imagehub-tiny.md"):
            page = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example"})
            links = re.findall(r"(https?://[^/\s)]+)", page.text)
            assert page.status_code == 200 and links, page.text[:300]
            assert set(links) == {"https://images.example.com"}, (path, set(links))
    finally:
        server.stop()
