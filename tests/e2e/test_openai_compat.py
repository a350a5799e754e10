"""``POST /api/ai/images/generations`` through the official ``openai`` package (API.md section 7)."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from conftest import ServerProcess
from PIL import Image


@pytest.fixture
def oai(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/api/ai", api_key=server.key, max_retries=0)


def test_openai_sdk_generates_urls(oai: openai.OpenAI) -> None:
    result = oai.images.generate(model="tiny-sd", prompt="a red circle", n=2, size="1536x1024",
                                 response_format="url")
    assert isinstance(result.created, int) and len(result.data) == 2
    for item in result.data:
        png = httpx.get(item.url)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        # 1536x1024 -> 3:2 at 1K (√(1536·1024) ≈ 1254 is nearest 1024): 1248x832 (API.md section 6)
        assert Image.open(io.BytesIO(png.content)).size == (1248, 832)
    assert result.size == "1248x832" and result.output_format == "png"


def test_openai_sdk_b64_webp_and_seed_pass_through(oai: openai.OpenAI) -> None:
    kwargs = {"model": "tiny-sd", "prompt": "a blue square", "response_format": "b64_json",
              "output_format": "webp", "extra_body": {"seed": 11}}
    first, second = oai.images.generate(**kwargs), oai.images.generate(**kwargs)
    image = Image.open(io.BytesIO(base64.b64decode(first.data[0].b64_json)))
    assert image.format == "WEBP" and image.size == (512, 512)
    assert first.data[0].b64_json == second.data[0].b64_json  # the seed reached the model


def test_openai_sdk_sees_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.images.generate(model="tiny-sd", prompt="x", size="huge")
    assert "size: 'huge'" in bad.value.response.json()["error"]["detail"]
    with pytest.raises(openai.BadRequestError) as fmt:
        oai.images.generate(model="tiny-sd", prompt="x", output_format="jpeg")
    assert "response_format 'b64_json'" in fmt.value.response.json()["error"]["detail"]
    with pytest.raises(openai.NotFoundError):
        oai.images.generate(model="no-such-model", prompt="x", size="1024x1024")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(oai.base_url), api_key="wrong", max_retries=0).images.generate(
            model="tiny-sd", prompt="x")


def test_generations_row_recorded(api: httpx.Client) -> None:
    r = api.post("/api/ai/images/generations",
                 json={"model": "tiny-sd", "prompt": "a green cube", "size": "1024x1024", "user": "u1"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"created", "data", "output_format", "size"}
    history = api.get("/api/ai/generations", params={"model": "tiny-sd"}).json()["generations"]
    row = next(g for g in history if g["prompt"] == "a green cube")
    assert row["aspect_ratio"] == "1:1" and row["resolution"] == "1K" and "user" not in row
