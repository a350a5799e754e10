"""Settings: the one place that reads the environment.

Every setting has an ``IMAGEHUB_`` environment variable (``IMAGEHUB_DATA_DIR``, ``IMAGEHUB_PORT``,
...). Settings are built by :func:`load_settings`, never at import time.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from imagehub.errors import ConfigError, quote

log = logging.getLogger(__name__)


def _default_data_dir() -> Path:
    return Path.home() / ".imagehub"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imagehub"


class Settings(BaseSettings):
    """imagehub's configuration, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="IMAGEHUB_", extra="ignore")

    # where things live
    data_dir: Path = Field(default_factory=_default_data_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """What is worth keeping between runs but can be made again: what each diffusers pipeline
    class takes (reading it imports the pipeline, seconds at every start with a local model);
    default ``$XDG_CACHE_HOME/imagehub`` (``~/.cache/imagehub``)."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/imagehub.db``. Checked at start: it must
    parse, and its dialect and driver must import."""
    db_busy_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """SQLite: how long a write waits for another process's write lock; past it the request is a
    503 ``busy`` with ``Retry-After`` and nothing written."""
    catalog_path: Path | None = None
    """The user's model catalog (TOML); default ``<data_dir>/models.toml``."""

    # serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    """Base URL put in image links, ``http(s)://host[:port][/path]``; default
    ``http://<host>:<port>``."""
    auth_enabled: bool = True
    http_threads: int = Field(default=256, ge=1)
    """Threads for blocking routes (sync generate waits in one per request)."""
    http_idle_timeout_seconds: float = Field(default=65.0, gt=0)
    """How long an idle keep-alive connection stays open. Above the usual 60 s of load balancers,
    and far above a client polling every 5 s (uvicorn's own 5 s would race that client's next
    request against the close)."""
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    rate_limit_per_minute: int = Field(default=0, ge=0)
    """Requests per key per minute; 0 turns the limiter off."""
    max_queued_per_namespace: int = Field(default=10_000, ge=0)
    """Generations one namespace may have queued or processing at once; an enqueue past it is a
    429 (a runaway script cannot fill the queue for everyone). 0: no limit."""
    default_model: str = "imagehub-tiny"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The level of imagehub's own loggers (other libraries log at INFO and up, or at this level
    when it is higher)."""
    access_log: bool = False
    """One log line per HTTP request (uvicorn's access log; image-link tokens left out)."""

    # images
    signing_secret: SecretStr | None = None
    """Secret for signed file URLs, at least 16 characters; default a random one kept in
    ``<data_dir>/secret``."""
    url_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    retention_days: float = Field(default=0.0, ge=0, le=36500)
    """Ended generations (succeeded, failed, cancelled) older than this many days are deleted,
    their rows and their images; 0 (the default) keeps them for ever. Stored input images no
    queued or running generation needs are deleted an hour after they were last written, whatever
    this says."""

    # queue and workers
    run_workers: bool = True
    """False: this process never takes queued jobs (an API-only node); sync calls still run here."""
    worker_concurrency: int = Field(default=1, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    """A job interrupted by a crash this many times fails instead of running again."""
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    stop_grace_seconds: float = Field(default=5.0, ge=0)
    """At a graceful stop (SIGTERM, Ctrl-C), how long running generations have to end; the rest
    go back to the queue for the next start, not counted as attempts."""
    provider_concurrency: int = Field(default=8, ge=1)
    """Remote generations (providers: Gemini, fal, an Oxen hub, OpenAI) running at once, in
    workers of their own: a provider taking its time never holds up a local model, nor takes
    one of ``WORKER_CONCURRENCY``'s engine slots."""
    max_batch_size: int = Field(default=1, ge=1)
    """Images one engine call may take when the engine batches (diffusers): 16 to 64 on a GPU;
    1 (the default) runs one job at a time, the best latency on a CPU. A card's
    ``max_batch_size`` sets its own model's."""
    batch_wait_ms: float = Field(default=5.0, ge=0)
    """How long a batch that is not full waits for more compatible work."""
    encode_workers: int = Field(default=4, ge=1)
    """Threads encoding a batch's PNGs, off the engine's thread."""

    # events
    keepalive_seconds: float = Field(default=15.0, gt=0)
    event_buffer_size: int = Field(default=1000, ge=1)
    sse_padding_bytes: int = Field(default=4096, ge=0)
    """Comment bytes after each completed event, so block-buffered pipes (mawk) see it at once."""
    event_catch_up_seconds: float = Field(default=30.0, ge=0)
    """A new stream (no Last-Event-ID) first gets the events of this many past seconds."""

    # engines
    allow_hub_downloads: bool = False
    """Let diffusers models fetch weights from the Hugging Face hub (off: offline only)."""
    model_memory_budget_gb: float | None = Field(default=None, gt=0)
    """Memory the loaded diffusers models may take per device (GiB); the least recently used
    idle ones are unloaded to stay under it. Default: no budget (loaded models stay)."""
    engine_process: bool | Literal["auto"] = "auto"
    """Run each local diffusers model in a child process of its own (a card's ``process``
    overrides): ``auto`` does on an accelerator, where the model's kernel launches would otherwise
    wait for the GIL behind the HTTP server's threads; ``true``/``false`` always/never."""
    engine_handoff: bool | Literal["auto"] = False
    """Let the next batch go to a model once the last batch's pixels are on the host, so it runs
    while the last one's images come back: ``true``, ``false`` (the default: on an H100, handing
    off at the last denoising step instead cut batches from 28-30 images to 23-24 and served no
    faster; the later point awaits its GPU run), or ``auto``, which hands off where the model's
    device is not the host's CPU (where the two share the cores)."""
    preload_models: str = ""
    """Comma-separated model ids loaded (and warmed up) at start and never unloaded (pinned)."""

    # remote providers (keys are SecretStr: never logged, never echoed)
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    fal_api_key: SecretStr | None = None
    fal_base_url: str = "https://queue.fal.run"
    oxen_api_key: SecretStr | None = None
    oxen_base_url: str = "https://hub.oxen.ai"
    """An upstream Oxen-compatible hub (hub.oxen.ai or another imagehub)."""
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com"
    provider_timeout_seconds: float = Field(default=120.0, gt=0)
    """Per HTTP request to a provider (Gemini answers only when the image exists)."""
    provider_max_retries: int = Field(default=3, ge=0)
    """Retries after the first try, on 408/429/5xx and connection errors."""
    provider_backoff_seconds: float = Field(default=1.0, ge=0)
    provider_backoff_max_seconds: float = Field(default=30.0, ge=0)
    """A Retry-After longer than this is not waited for: the provider fails (the chain moves on)."""
    provider_poll_seconds: float = Field(default=1.0, gt=0)
    """Status polling interval for queue providers (fal, Oxen hub); also the cancel check period."""
    provider_deadline_seconds: float = Field(default=600.0, gt=0)
    """A remote generation that has not finished after this long fails."""

    # input images fetched from URLs
    fetch_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    fetch_timeout_seconds: float = Field(default=15.0, gt=0)
    max_input_pixels: int = Field(default=50_000_000, ge=1, le=178_956_970)
    """An input image (data URI, upload or URL) with more pixels is a 413: decoding takes about 4
    bytes a pixel, and a small file can declare a huge image."""
    fetch_allow: str = ""
    """Comma-separated hosts or networks (``10.0.0.0/8``, ``images.internal``) that input-image
    URLs may reach although they are loopback, private, link-local or metadata addresses."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _loadable_database(cls, value: str | None) -> str | None:
        if value:
            _check_database_url(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value:
            _check_public_url(value)
        return value

    @field_validator("fetch_allow")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            _check_allow_entry(entry)
        return value

    @field_validator("signing_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        length = len(value.get_secret_value()) if value is not None else 0
        if 0 < length < MIN_SECRET_LENGTH:
            raise _refusal(f"too short: at least {MIN_SECRET_LENGTH} characters (it signs image "
                           "links; anyone who guesses it can forge them)")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'imagehub.db'}"

    @property
    def resolved_catalog_path(self) -> Path:
        return self.catalog_path or self.data_dir / "models.toml"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def secret(self) -> str:
        """The URL-signing secret, created once per data dir if none is configured."""
        if self.signing_secret and self.signing_secret.get_secret_value():
            return self.signing_secret.get_secret_value()
        import secrets

        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


CLIENT_VARIABLES = {"IMAGEHUB_URL", "IMAGEHUB_API_KEY"}
"""``IMAGEHUB_`` variables that are not settings: the CLI's and the Python client's target."""


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags).

    ConfigError names each bad variable and its value; a variable that looks like a setting but
    is none (a typo) is logged with the settings it may have meant."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(error) for error in exc.errors())) from None
    _warn_unknown(os.environ)
    return settings


def _problem(error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    name = f"IMAGEHUB_{field.upper()}" if field else "settings"
    return f"{name}{_shown(field, error['input'])}: {error['msg']}"


def _shown(field: str, value: Any) -> str:
    """``=<value>`` as an error quotes it; never a secret, nor a database URL's password."""
    annotation = str(Settings.model_fields[field].annotation) if field in Settings.model_fields else ""
    if "SecretStr" in annotation:
        return f" (not shown, {len(value)} characters)" if isinstance(value, str) else ""
    if field == "database_url" and isinstance(value, str):
        value = hide_password(value)
    return f"={quote(value)}"


MIN_SECRET_LENGTH = 16
_ADDRESS_LIKE = re.compile(r"[0-9.]+|.*[/:].*")
"""A ``FETCH_ALLOW`` entry that is meant as an address or network (digits and dots, or a ``/``
or ``:``, which no host name has), so it must parse as one."""


def _refusal(message: str) -> PydanticCustomError:
    return PydanticCustomError("imagehub_setting", message)  # its message, without "Value error, "


def _check_public_url(value: str) -> None:
    """``http(s)://host[:port][/path]``, or the image links it makes are not links."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError as exc:
        raise _refusal(f"not a URL ({exc}); give http(s)://host[:port][/path]") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refusal("not an http(s):// URL with a host; give http(s)://host[:port][/path]")
    if "@" in parts.netloc or "?" in value or "#" in value:
        raise _refusal("only http(s)://host[:port][/path]: no user, query or fragment")
    if any(c.isspace() for c in value):
        raise _refusal("has white space in it")


def _check_allow_entry(entry: str) -> None:
    if _ADDRESS_LIKE.fullmatch(entry):
        try:
            ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            raise _refusal(f"{entry!r} looks like an address or network (10.0.0.0/8, fd00::/8) "
                           "but is not one") from None


def _check_database_url(value: str) -> None:
    """It parses, and its dialect and driver import (else the start fails on its first query)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise _refusal(f"not a SQLAlchemy URL ({exc}); e.g. sqlite:////srv/imagehub/imagehub.db, "
                       "postgresql+psycopg://user:password@host/database") from None
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise _refusal(f"SQLAlchemy has no dialect or driver {url.drivername!r} (postgresql, "
                       "not postgres; sqlite, mysql...)") from None
    except ImportError as exc:
        raise _refusal(f"the driver of {url.drivername!r} is not installed ({exc})") from None


def hide_password(url: str) -> str:
    """A database URL with its password as ``***`` (SQLAlchemy's rendering where it parses)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL: hide what sits where a password would
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _warn_unknown(environ: Mapping[str, str]) -> None:
    known = {f"IMAGEHUB_{name.upper()}" for name in Settings.model_fields} | CLIENT_VARIABLES
    for name in sorted(n for n in environ if n.startswith("IMAGEHUB_") and n not in known):
        near = difflib.get_close_matches(name, known, n=2)
        log.warning("%s is not an imagehub setting (ignored)%s", name,
                    f"; did you mean {' or '.join(near)}?" if near else "")
