"""``imagehub serve``: check what can be checked (settings, catalog, worker lock, the port), then
start uvicorn on the socket bound here, and say where it serves once it listens. A failure before
that is one ``error:`` line naming the setting and its value, not a traceback."""

from __future__ import annotations

import errno
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from imagehub import __version__
from imagehub.catalog.catalog import Catalog
from imagehub.cli.target import fail
from imagehub.config import Settings, hide_password, load_settings
from imagehub.errors import ConfigError, DataDirBusy

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""imagehub's lines and uvicorn's alike (uvicorn's own logging config is not used)."""


def run(announce: Callable[[Settings], None], **overrides: object) -> None:
    """Serve until stopped; ``announce`` is called once the server listens."""
    from imagehub.api.app import create_app

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # before the settings' warnings
    settings = load_settings(**overrides)
    set_log_levels(settings)
    catalog = _checked(settings)
    sock = bind(settings)
    app = create_app(settings, catalog)
    config = uvicorn.Config(app, log_config=None, log_level=None, access_log=settings.access_log,
                            timeout_keep_alive=settings.http_idle_timeout_seconds)
    logging.getLogger("uvicorn.error").addFilter(_QuietStartupFailure(app))
    server = _Server(config, lambda: _listening(settings, announce))
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's exit when the start-up failed
        _fail_if_start_up_failed(app)
        raise
    _fail_if_start_up_failed(app)


def set_log_levels(settings: Settings) -> None:
    """``LOG_LEVEL`` for imagehub's loggers; other libraries at INFO and up (uvicorn's own at
    WARNING: its start-up lines repeat imagehub's), or at ``LOG_LEVEL`` where that is higher.
    The access log, when on, at INFO whatever the level."""
    level = logging.getLevelName(settings.log_level.upper())
    logging.getLogger().setLevel(max(level, logging.INFO))
    logging.getLogger("imagehub").setLevel(level)
    for name in ("alembic", "uvicorn.error", "uvicorn.asgi"):  # migrations are routine at start
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    access.addFilter(HideFileTokens())


class HideFileTokens(logging.Filter):
    """An access-log line without the token of an image link (``/api/files/<token>/0.png``): the
    token is what lets anyone fetch the image until it expires."""

    TOKEN = re.compile(r"(/api/files/)[^/?\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            path = self.TOKEN.sub(r"\1<token>", record.args[2])
            record.args = (*record.args[:2], path, *record.args[3:])
        return True


def _checked(settings: Settings) -> Catalog:
    """The catalog and preloads (ConfigError), and the data dir's worker lock free."""
    from imagehub.services.hub import check_config, check_workers_free

    catalog = check_config(settings)
    if settings.run_workers:
        try:
            check_workers_free(settings)
        except DataDirBusy as exc:
            fail(exc.detail, exc)
    return catalog


def bind(settings: Settings) -> socket.socket:
    """The server's socket, bound to ``HOST``:``PORT`` (uvicorn listens on it), or ConfigError
    naming the setting that cannot work: bound before anything starts, so a port in use stops
    ``serve`` before the database, the workers or the models."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restarts at once
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(_bind_problem(settings, exc)) from None
    return sock


def _bind_problem(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"IMAGEHUB_PORT={settings.port}: {where} is in use (another server listens "
                "there); stop it or choose another port")
    if exc.errno == errno.EACCES:
        return f"IMAGEHUB_PORT={settings.port}: not allowed to listen on {where} ({exc.strerror})"
    return f"IMAGEHUB_HOST={settings.host!r}: cannot listen on {where} ({exc.strerror or exc})"


def _listening(settings: Settings, announce: Callable[[Settings], None]) -> None:
    log.info("imagehub %s serving at %s (listening on %s:%d; data dir %s; database %s)",
             __version__, settings.base_url, settings.host, settings.port, settings.data_dir,
             hide_password(settings.resolved_database_url))
    announce(settings)


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_listening`` once its start-up is done and it listens."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_listening()


def _fail_if_start_up_failed(app: Any) -> None:
    """A preloaded model could not load in the app's start-up: one line, as the checks before."""
    error = getattr(app.state, "startup_error", None)
    if error is not None:
        fail(str(error), error)


class _QuietStartupFailure(logging.Filter):
    """Drops uvicorn's report of a failed start-up (the traceback of the lifespan) when the
    app's start-up failed for a reason ``serve`` prints as one line itself."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(self.app.state, "startup_error", None) is None
