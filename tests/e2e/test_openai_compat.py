"""``POST /api/ai/images/generations`` through the official ``openai`` package (API.md section 7)."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
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
    with pytest.raises(openai.BadRequestError) as wide:
        oai.images.generate(model="tiny-sd", prompt="x", size="100000x1")
    assert wide.value.response.json()["error"]["detail"].startswith(
        "size: '100000x1' has a side over 99999 pixels")
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


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (512, 512)) -> bytes:
    image = Image.new("RGB", size, colour)
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_openai_sdk_edits_an_uploaded_image(oai: openai.OpenAI, api: httpx.Client) -> None:
    """images.edit sends multipart/form-data: the file becomes the model's input_image, and the
    form's text fields are read as the schema's types (strength 0 gives back the input)."""
    source = _png((200, 40, 40))
    result = oai.images.edit(model="tiny-sd", prompt="keep it", image=("in.png", source, "image/png"),
                             response_format="b64_json", extra_body={"strength": 0, "seed": 5})
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))), np.int16)
    expected = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"), np.int16)
    assert out.shape == expected.shape and np.abs(out - expected).max() <= 8
    assert result.size == "512x512" and result.output_format == "png"
    row = next(g for g in api.get("/api/ai/generations", params={"model": "tiny-sd"}).json()["generations"]
               if g["prompt"] == "keep it")
    assert row["strength"] == 0 and row["seed"] == 5  # typed: a number and an integer, not text
    assert row["input_image"].startswith("data:image/png;base64,...(")


def test_openai_sdk_edit_errors_name_the_field(oai: openai.OpenAI, api: httpx.Client) -> None:
    source = ("in.png", _png((10, 200, 10), (64, 64)), "image/png")
    cases = [
        ({"image": ("notes.txt", b"not an image", "text/plain")},
         "image: 'notes.txt' (12 bytes) is not a readable image (not a PNG/JPEG/WebP/GIF/BMP file)"),
        ({"image": source, "mask": ("mask.png", b"\x89PNG", "image/png")},
         "mask: 'mask.png' (4 bytes) is not supported"),
        ({"image": source, "extra_body": {"strength": "lots"}},
         "strength: 'lots' is not of type 'number'"),
        ({"image": source, "n": 9}, "n: 9 is greater than the maximum 4"),
        ({"image": [source, source]}, "image: ['data:image/png;base64,iVBOR"),
        ({"image": [source, source]}, ("is a list of 2; this model takes one (a string) (the "
                                       "'image' files are the model's input_image)")),
    ]
    for kwargs, message in cases:
        with pytest.raises(openai.BadRequestError) as bad:
            oai.images.edit(model="tiny-sd", prompt="x", **kwargs)
        assert message in bad.value.response.json()["error"]["detail"], kwargs
    missing = api.post("/api/ai/images/edits", data={"model": "tiny-sd", "prompt": "x"},
                       files={"other": ("a.png", source[1], "image/png")})
    assert missing.status_code == 400
    assert missing.json()["error"]["detail"].startswith("other: unknown file field ('a.png')")
    no_image = api.post("/api/ai/images/edits", files={"model": (None, "tiny-sd"),
                                                       "prompt": (None, "x")})
    assert no_image.status_code == 400
    assert no_image.json()["error"]["detail"] == "image: required file is missing (the image to edit)"
    twice = api.post("/api/ai/images/edits", files=[
        ("model", (None, "tiny-sd")), ("prompt", (None, "a red cube")), ("prompt", (None, "a cat")),
        ("image", source)])
    assert twice.status_code == 400
    assert twice.json()["error"]["detail"].startswith(
        "prompt: sent more than once ('a red cube', then 'a cat')"), twice.text
    from image_bombs import png_declaring

    big = api.post("/api/ai/images/edits", data={"model": "tiny-sd", "prompt": "x"},
                   files={"image": ("big.png", png_declaring(8000, 8000), "image/png")})
    assert big.status_code == 413 and big.json()["error"]["detail"].endswith(
        "is an image of 8000x8000 (64000000 pixels), over the limit of 50000000 pixels "
        "(IMAGEHUB_MAX_INPUT_PIXELS)"), big.text
    as_json = api.post("/api/ai/images/edits", json={"model": "tiny-sd", "prompt": "x"})
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["detail"]
    with pytest.raises(openai.NotFoundError):
        oai.images.edit(model="no-such-model", prompt="x", image=source)
