"""The Workbench's route: ``/`` and ``/workbench/<asset>`` from the installed package."""

from __future__ import annotations

from importlib import resources

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagehub.api import errors
from imagehub.api.routes import workbench

ASSETS = ["app.js", "api.js", "dom.js", "form.js", "snippets.js", "style.css", "index.html"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(workbench.router)
    return TestClient(app)


def test_index_is_the_workbench(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>imagehub Workbench</title>" in r.text
    assert 'src="/workbench/app.js"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("name", ASSETS)
def test_every_asset_is_shipped_and_served(client: TestClient, name: str) -> None:
    shipped = (resources.files("imagehub") / "workbench" / name).read_bytes()
    r = client.get(f"/workbench/{name}")
    assert r.status_code == 200 and r.content == shipped
    expected = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[1]]
    assert r.headers["content-type"].startswith(expected)
    assert r.headers["x-content-type-options"] == "nosniff"


def test_modules_import_only_shipped_files(client: TestClient) -> None:
    """Every ``import ... from "./x.js"`` of every module resolves to a served asset."""
    import re

    for name in ASSETS:
        if name.endswith(".js"):
            for target in re.findall(r'from "\./([\w.-]+)"', client.get(f"/workbench/{name}").text):
                assert client.get(f"/workbench/{target}").status_code == 200, (name, target)


@pytest.mark.parametrize("path", ["/workbench/missing.js", "/workbench/__init__.py",
                                  "/workbench/../client.py", "/workbench/%2e%2e/client.py",
                                  "/workbench/.hidden", "/workbench/",
                                  "/workbench/" + "a" * 300, "/workbench/app.js/",
                                  "/workbench//app.js", "/workbench/a/.hidden/x.js",
                                  "/workbench/app.js%00"])
def test_nothing_else_is_served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.json()["error"]["type"] == "resource_not_found"


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    get, head = client.get("/workbench/app.js"), client.head("/workbench/app.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
