"""``imagehub.services.fetch`` on malformed URLs and fetched bombs: a 400 or a 413 that names
the field and the URL, never an uncaught ValueError or DecompressionBombError."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from image_bombs import BombHost

from imagehub.errors import InvalidParams, PayloadTooLarge
from imagehub.services.fetch import ImageFetcher, check_image_ref


@pytest.fixture
def host() -> Iterator[BombHost]:
    server = BombHost(redirect_to="https://a]/x.png").start()  # httpx takes it; urllib does not
    yield server
    server.stop()


@pytest.mark.parametrize("url", ["https://[::1/x.png", "https://::1]/x.png", "https://[abc]/x.png"])
def test_a_malformed_url_is_400_naming_field_and_url(url: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        check_image_ref("input_image", url, ImageFetcher())
    assert raised.value.detail.startswith(f"input_image: {url!r} is not a valid URL")


def test_a_fetched_bomb_is_413_naming_size_and_limit(host: BombHost) -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        ImageFetcher(allow=["127.0.0.1"]).fetch("input_image", f"{host.url}/bomb.png")
    detail = raised.value.detail
    assert detail.startswith(f"input_image: '{host.url}/bomb.png' is an image of 400000000 pixels")
    assert detail.endswith("over the limit of 50000000 pixels (IMAGEHUB_MAX_INPUT_PIXELS)")


def test_fetched_junk_is_400_without_an_object_repr(host: BombHost) -> None:
    with pytest.raises(InvalidParams) as raised:
        ImageFetcher(allow=["127.0.0.1"]).fetch("input_image", f"{host.url}/junk.png")
    assert "is not a readable image (not a PNG/JPEG" in raised.value.detail
    assert "BytesIO" not in raised.value.detail


def test_a_redirect_to_a_malformed_url_is_400(host: BombHost) -> None:
    with pytest.raises(InvalidParams, match=r"redirects to an invalid URL 'https://a\]/x.png'"):
        ImageFetcher(allow=["127.0.0.1"]).fetch("input_image", f"{host.url}/redirect")


def test_a_url_httpx_refuses_is_400(host: BombHost) -> None:
    url = f"{host.url}/a\x01.png"
    with pytest.raises(InvalidParams, match="could not be fetched"):
        ImageFetcher(allow=["127.0.0.1"]).fetch("input_image", url)
