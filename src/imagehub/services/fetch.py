"""Input images from URLs, fetched without letting a caller reach our network (SSRF).

A URL is checked twice: at request time (:meth:`ImageFetcher.check`: scheme, host, DNS, every
resolved address), so a bad URL is a 400 at enqueue, and again when it is fetched
(:meth:`ImageFetcher.fetch`), which resolves again, refuses again, and connects to the address it
checked (no second lookup a rebinding DNS server could answer differently). Refused unless the
allow-list (``IMAGEHUB_FETCH_ALLOW``) says otherwise: loopback, private, link-local, cloud metadata,
multicast, reserved and every other non-global address (an IPv6 one that embeds an IPv4 address,
by that one too); ``http://`` (only ``https://`` reaches the
public internet); credentials in the URL. Redirects are followed by hand (at most
:data:`MAX_REDIRECTS`), each target checked like the first. The body must declare an image
content type, stay under ``IMAGEHUB_FETCH_MAX_BYTES`` (413 otherwise), arrive, redirects and
all, within ``IMAGEHUB_FETCH_TIMEOUT_SECONDS`` (one deadline for the whole exchange) and decode like a data URI
(:func:`imagehub.storage.images.decode_image`: a 413 past ``IMAGEHUB_MAX_INPUT_PIXELS``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx
from PIL import Image

from imagehub.config import Settings
from imagehub.errors import InvalidParams, PayloadTooLarge, quote
from imagehub.storage.images import MAX_INPUT_PIXELS, decode_data_uri, decode_image

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]

MAX_REDIRECTS = 3
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif", "image/bmp")
METADATA_ADDRESSES = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200",
                                      "fd00:ec2::254")
}
"""AWS/GCP/Azure/OpenStack, ECS task metadata, Alibaba, AWS IPv6: named so the refusal says so."""
METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data"}


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


@dataclass
class Target:
    """A checked URL: where to connect and what to say to it."""

    url: str
    host: str
    port: int
    address: IPAddress


@dataclass
class ImageFetcher:
    """Fetches ``input_image`` URLs under the limits and refusals above."""

    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 15.0
    max_pixels: int = MAX_INPUT_PIXELS
    allow: Iterable[str] = ()
    resolver: Resolver = resolve
    _hosts: set[str] = field(default_factory=set, init=False, repr=False)
    _networks: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for entry in (e.strip().lower() for e in self.allow):
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._hosts.add(entry)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageFetcher:
        return cls(max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout_seconds,
                   max_pixels=settings.max_input_pixels, allow=settings.fetch_allow.split(","))

    # ---- checks ---------------------------------------------------------------------------------

    def check(self, field_name: str, url: str) -> Target:
        """The URL's connect target, or InvalidParams naming the field, the URL and the reason."""
        parts = self._split(field_name, url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise self._refuse(field_name, url, "is neither an https:// URL nor a data:image/ URI")
        if parts.username or parts.password:
            raise self._refuse(field_name, url, "carries credentials; they are not accepted")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise self._refuse(field_name, url, f"has a bad port ({exc})") from exc
        host_allowed = self._host_allowed(host)
        if host in METADATA_HOSTS and not host_allowed:
            raise self._refuse(field_name, url, "names a cloud metadata service")
        if parts.scheme == "http" and not (self._hosts or self._networks or _is_address(host)):
            raise self._refuse(field_name, url, _PLAIN_HTTP)  # nothing could allow it: no lookup
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise self._refuse(field_name, url, f"names a host that does not resolve ({exc})") from exc
        if not addresses:
            raise self._refuse(field_name, url, "names a host that does not resolve")
        for address in addresses:
            reason = None if host_allowed or self._address_allowed(address) else refusal(address)
            if reason:
                raise self._refuse(field_name, url, f"resolves to {address}, {reason}; set "
                                   "IMAGEHUB_FETCH_ALLOW to permit it")
        if parts.scheme == "http" and not (host_allowed or all(map(self._address_allowed, addresses))):
            raise self._refuse(field_name, url, _PLAIN_HTTP)
        return Target(url=url, host=host, port=port, address=addresses[0])

    def _split(self, field_name: str, url: str) -> SplitResult:
        try:
            return urlsplit(url)
        except ValueError as exc:  # "Invalid IPv6 URL" (an unclosed "[::1"), a bad bracketed host
            raise self._refuse(field_name, url, f"is not a valid URL ({exc})") from exc

    def _host_allowed(self, host: str) -> bool:
        return any(host == h or (h.startswith(".") and host.endswith(h)) for h in self._hosts)

    def _address_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    @staticmethod
    def _refuse(field_name: str, url: str, reason: str) -> InvalidParams:
        return InvalidParams(f"{field_name}: {shown(url)} {reason}")

    # ---- fetch ----------------------------------------------------------------------------------

    def fetch(self, field_name: str, url: str) -> Image.Image:
        """The image at ``url`` as RGB; InvalidParams (400) or PayloadTooLarge (413) otherwise.
        The whole exchange (lookups, redirects, headers, body) ends within the timeout: a host
        that sends its headers a byte at a time holds the caller no longer than that."""
        data, final = asyncio.run(self._fetch_within_timeout(field_name, url))  # callers: threads
        return decode_image(field_name, shown(final), data, self.max_pixels)

    async def _fetch_within_timeout(self, field_name: str, url: str) -> tuple[bytes, str]:
        current = url
        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             trust_env=False) as client:
                    for _ in range(MAX_REDIRECTS + 1):
                        target = await _off_the_loop(self.check, field_name, current)
                        data, location = await self._get(client, field_name, target)
                        if location is None:
                            return data, current
                        current = self._redirect(field_name, current, location)
        except TimeoutError as exc:
            raise self._refuse(field_name, current, self._late()) from exc
        raise self._refuse(field_name, current, f"redirects more than {MAX_REDIRECTS} times")

    def _redirect(self, field_name: str, url: str, location: str) -> str:
        try:
            return urljoin(url, location)
        except ValueError as exc:  # a Location such as "https://[::1"
            raise self._refuse(field_name, url, f"redirects to an invalid URL {location[:120]!r} "
                               f"({exc})") from exc

    async def _get(self, client: httpx.AsyncClient, field_name: str,
                   target: Target) -> tuple[bytes, str | None]:
        parts = urlsplit(target.url)
        literal = f"[{target.address}]" if target.address.version == 6 else str(target.address)
        pinned = parts._replace(netloc=f"{literal}:{target.port}").geturl()
        headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": ", ".join(IMAGE_TYPES)}
        try:
            async with client.stream("GET", pinned, headers=headers,
                                     extensions={"sni_hostname": target.host}) as response:
                if response.is_redirect:
                    return b"", response.headers.get("location", "")
                self._check_response(field_name, target.url, response)
                return await self._read(field_name, target.url, response), None
        except httpx.TimeoutException as exc:
            raise self._refuse(field_name, target.url, self._late()) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._refuse(field_name, target.url,
                               f"could not be fetched ({type(exc).__name__}: {exc})") from exc

    def _check_response(self, field_name: str, url: str, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise self._refuse(field_name, url, f"answered HTTP {response.status_code}")
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in IMAGE_TYPES:
            raise self._refuse(field_name, url, f"is not an image (content-type {kind or 'missing'!r}; "
                               f"accepted: {list(IMAGE_TYPES)})")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(field_name, url)

    async def _read(self, field_name: str, url: str, response: httpx.Response) -> bytes:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(field_name, url)
            chunks.append(chunk)
        return b"".join(chunks)

    def _late(self) -> str:
        return f"was not fetched within {self.timeout:g} s (IMAGEHUB_FETCH_TIMEOUT_SECONDS)"

    def _too_large(self, field_name: str, url: str) -> PayloadTooLarge:
        return PayloadTooLarge(f"{field_name}: {url[:120]!r} is larger than the limit of "
                               f"{self.max_bytes} bytes (IMAGEHUB_FETCH_MAX_BYTES)")


async def _off_the_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` (a DNS look-up) on a daemon thread of its own: one that outlives its
    fetch's deadline (a slow name server) is left to end there, holding no pool another fetch
    needs, and ``asyncio.run`` does not wait for it as it would for the loop's executor."""
    future: Future[T] = Future()

    def call() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting fetch
            future.set_exception(exc)

    threading.Thread(target=call, name="imagehub-lookup", daemon=True).start()
    return await asyncio.wrap_future(future)


def shown(url: str) -> str:
    """``url`` as an error message quotes it (at most 120 characters)."""
    return quote(url, 120)


def refusal(address: IPAddress) -> str | None:
    """Why an address may not be fetched by default; None for a global unicast address. An IPv6
    address that carries an IPv4 one (mapped, NAT64, 6to4, Teredo) is judged by that one too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := refusal(embedded)):
            return f"{reason} inside {address}"
        if address.is_site_local:
            return "a site-local address"
        address = address.ipv4_mapped or address
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for test, name in (("is_loopback", "a loopback address"), ("is_unspecified", "an unspecified address"),
                       ("is_link_local", "a link-local address"), ("is_multicast", "a multicast address"),
                       ("is_private", "a private address"), ("is_reserved", "a reserved address")):
        if getattr(address, test):
            return name
    if address in _RELAY_ANYCAST:
        return "a 6to4 relay address"
    return None if address.is_global else "not a public address"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_RELAY_ANYCAST = ipaddress.ip_network("192.88.99.0/24")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    return address.ipv4_mapped


# ---- the process-wide fetcher requests.py uses ---------------------------------------------------

_default: ImageFetcher | None = None


def configure(settings: Settings) -> ImageFetcher:
    """Set the fetcher every request uses (the hub calls this with its settings)."""
    global _default
    _default = ImageFetcher.from_settings(settings)
    return _default


def default_fetcher() -> ImageFetcher:
    """The configured fetcher; built from the environment's settings on first use otherwise."""
    if _default is None:
        from imagehub.config import load_settings

        return configure(load_settings())
    return _default


def is_url(value: str) -> bool:
    return not value.startswith("data:")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_PLAIN_HTTP = ("is plain http://; only https:// URLs are fetched (IMAGEHUB_FETCH_ALLOW permits "
               "http for the hosts it lists)")


def check_image_ref(field_name: str, value: str, fetcher: ImageFetcher | None = None, *,
                    decode: bool = True) -> None:
    """Request-time check of one ``input_image`` entry: an allowed URL, or a data URI that
    decodes (``decode=False``: whose header shows an accepted format and size)."""
    fetcher = fetcher or default_fetcher()
    if is_url(value):
        fetcher.check(field_name, value)
    else:
        decode_data_uri(field_name, value, fetcher.max_pixels, load=decode)


def load_image(field_name: str, value: str, fetcher: ImageFetcher | None = None) -> Image.Image:
    """One ``input_image`` entry as an RGB image: decoded from a data URI or fetched."""
    fetcher = fetcher or default_fetcher()
    if is_url(value):
        return fetcher.fetch(field_name, value)
    return decode_data_uri(field_name, value, fetcher.max_pixels)
