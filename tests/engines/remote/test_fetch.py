"""The input-image fetcher (``imagehub.services.fetch``): SSRF refusals after DNS resolution,
the allow-list, size, content type, timeout, redirects. It lives with the remote tests because
provider result URLs on foreign hosts go through it too."""

from __future__ import annotations

import ipaddress

import pytest

from imagehub.errors import InvalidParams, PayloadTooLarge
from imagehub.services.fetch import ImageFetcher, check_image_ref

PUBLIC = ipaddress.ip_address("93.184.216.34")


def fake_dns(table: dict[str, str]):  # type: ignore[no-untyped-def]
    """A resolver answering from ``table`` (a name that is an IP literal resolves to itself)."""
    def resolver(host: str, port: int) -> list:  # type: ignore[type-arg]
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            if host not in table:
                raise OSError(f"[Errno -2] Name or service not known: {host}") from None
            return [ipaddress.ip_address(a) for a in table[host].split(",")]
    return resolver


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1/a.png", "a loopback address"),
    ("https://localhost/a.png", "a loopback address"),
    ("https://[::1]/a.png", "a loopback address"),
    ("https://[::ffff:127.0.0.1]/a.png", "a loopback address"),
    ("https://10.1.2.3/a.png", "a private address"),
    ("https://192.168.0.10/a.png", "a private address"),
    ("https://172.16.5.4/a.png", "a private address"),
    ("https://[fd12::1]/a.png", "a private address"),
    ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("https://[fd00:ec2::254]/", "a cloud metadata address"),
    ("https://169.254.10.10/a.png", "a link-local address"),
    ("https://[fe80::1]/a.png", "a link-local address"),
    ("https://0.0.0.0/a.png", "an unspecified address"),
    ("https://100.64.0.1/a.png", "not a public address"),
    ("https://224.0.0.1/a.png", "a multicast address"),
    ("https://[2002:7f00:1::]/a.png", "a loopback address inside 2002:7f00:1::"),  # 6to4
    ("https://[2002:a9fe:a9fe::]/a.png", "a cloud metadata address inside"),
    ("https://[64:ff9b::a00:1]/a.png", "a private address inside 64:ff9b::a00:1"),  # NAT64
    ("https://[fec0::1]/a.png", "a site-local address"),
    ("https://192.88.99.1/a.png", "a 6to4 relay address"),
    ("https://innocent.example/a.png", "a private address"),       # DNS answers a private address
    ("https://mixed.example/a.png", "a loopback address"),         # one bad answer is enough
])
def test_refusals_after_resolution(url, reason) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(resolver=fake_dns({"localhost": "127.0.0.1", "innocent.example": "10.0.0.7",
                                              "mixed.example": f"{PUBLIC},127.0.0.1"}))
    with pytest.raises(InvalidParams) as raised:
        fetcher.check("input_image", url)
    assert raised.value.detail.startswith(f"input_image: {url!r} resolves to ")
    assert reason in raised.value.detail and "IMAGEHUB_FETCH_ALLOW" in raised.value.detail


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.com/a.png", "neither an https:// URL nor a data:image/ URI"),
    ("not a url", "neither an https:// URL nor a data:image/ URI"),
    ("https://user:pw@public.example/a.png", "carries credentials"),
    ("https://metadata.google.internal/computeMetadata/v1/", "names a cloud metadata service"),
    ("https://nowhere.invalid/a.png", "does not resolve"),
    ("http://public.example/a.png", "plain http://"),
    ("http://nowhere.invalid/a.png", "plain http://"),  # said before the lookup that would fail
])
def test_other_refusals(url, reason) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(resolver=fake_dns({"public.example": str(PUBLIC)}))
    with pytest.raises(InvalidParams, match=reason):
        fetcher.check("input_image", url)


def test_a_public_https_url_passes_the_check() -> None:
    target = ImageFetcher(resolver=fake_dns({"public.example": str(PUBLIC)})).check(
        "input_image", "https://public.example/a.png")
    assert target.address == PUBLIC and target.port == 443 and target.host == "public.example"


def test_data_uris_are_still_checked() -> None:
    with pytest.raises(InvalidParams, match="is not a data:image/...;base64, URI"):
        check_image_ref("input_image", "data:text/plain;base64,aGk=", ImageFetcher())


def test_allow_list_permits_a_network_and_fetch_connects_to_the_checked_address(image_host) -> None:  # type: ignore[no-untyped-def]
    port = image_host.url.rsplit(":", 1)[1]
    fetcher = ImageFetcher(allow=["127.0.0.1/32"], resolver=fake_dns({"images.test": "127.0.0.1"}))
    image = fetcher.fetch("input_image", f"http://images.test:{port}/ok.png")
    assert image.size == (40, 30) and image.getpixel((0, 0)) == (10, 200, 30)
    assert image_host.log[-1].headers["host"] == f"images.test:{port}"


def test_allow_list_by_host_name(image_host) -> None:  # type: ignore[no-untyped-def]
    port = image_host.url.rsplit(":", 1)[1]
    fetcher = ImageFetcher(allow=["images.test"], resolver=fake_dns({"images.test": "127.0.0.1"}))
    assert fetcher.fetch("input_image", f"http://images.test:{port}/ok.png").size == (40, 30)
    with pytest.raises(InvalidParams, match="a loopback address"):
        fetcher.fetch("input_image", f"{image_host.url}/ok.png")  # 127.0.0.1 itself is not listed


def test_size_limit_is_413(image_host) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(max_bytes=100_000, allow=["127.0.0.1"])
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 100000 bytes"):
        fetcher.fetch("input_image", f"{image_host.url}/big.png")


def test_content_type_must_be_an_image(image_host) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(allow=["127.0.0.1"])
    with pytest.raises(InvalidParams, match="is not an image \\(content-type 'text/plain'"):
        fetcher.fetch("input_image", f"{image_host.url}/text")
    with pytest.raises(InvalidParams, match="answered HTTP 404"):
        fetcher.fetch("input_image", f"{image_host.url}/missing.png")


def test_timeout(image_host) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(timeout=0.5, allow=["127.0.0.1"])
    with pytest.raises(InvalidParams, match="was not fetched within 0.5 s"):
        fetcher.fetch("input_image", f"{image_host.url}/slow.png")


@pytest.mark.parametrize("drip", ["headers", "body"])
def test_a_host_dripping_bytes_is_cut_off_at_the_timeout(drip: str) -> None:
    """One byte every 0.1 s keeps each read inside a per-read timeout; the fetch as a whole still
    ends at ``timeout`` (a host sending its headers so could otherwise hold a worker for days)."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
        if drip == "body":
            conn.sendall(head + b"Content-Length: 100000\r\n\r\n")
        else:
            conn.sendall(head)
        with conn:
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"x" if drip == "body" else b"X-Slow: x\r\n"[:1])
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"
    started = time.monotonic()
    try:
        with pytest.raises(InvalidParams, match="was not fetched within 1 s"):
            ImageFetcher(timeout=1.0, allow=["127.0.0.1"]).fetch("input_image", url)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        listener.close()


def test_redirects_are_checked_like_the_first_url(image_host) -> None:  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(allow=["127.0.0.1"])
    image_host.redirect_to = "https://169.254.169.254/latest/meta-data/iam/"
    with pytest.raises(InvalidParams, match="169.254.169.254.* a cloud metadata address"):
        fetcher.fetch("input_image", f"{image_host.url}/redirect")
    image_host.redirect_to = "/ok.png"
    assert fetcher.fetch("input_image", f"{image_host.url}/redirect").size == (40, 30)


def test_redirect_loops_stop(image_host) -> None:  # type: ignore[no-untyped-def]
    image_host.redirect_to = "/redirect"
    with pytest.raises(InvalidParams, match="redirects more than 3 times"):
        ImageFetcher(allow=["127.0.0.1"]).fetch("input_image", f"{image_host.url}/redirect")


def test_slow_name_lookups_end_at_the_deadline_and_hold_up_no_other_fetch(image_host) -> None:  # type: ignore[no-untyped-def]
    """Twelve look-ups a slow name server leaves hanging: each fetch answers at its deadline, and
    a fetch of a good host meanwhile still gets its image."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    def slow(host: str, port: int) -> list:  # type: ignore[type-arg]
        time.sleep(3)
        return [PUBLIC]

    def hanging(_: int) -> float:
        started = time.monotonic()
        with pytest.raises(InvalidParams, match="was not fetched within 0.5 s"):
            ImageFetcher(timeout=0.5, resolver=slow).fetch("input_image", "https://slow.example/a.png")
        return time.monotonic() - started

    with ThreadPoolExecutor(12) as pool:
        waits = list(pool.map(hanging, range(12)))
    assert max(waits) < 2
    good = ImageFetcher(timeout=2, allow=["127.0.0.1"]).fetch("input_image", f"{image_host.url}/ok.png")
    assert good.size == (40, 30)
