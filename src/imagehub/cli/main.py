"""``imagehub serve``, ``imagehub keys`` and ``imagehub backup``; errors print one line and exit
non-zero."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from imagehub.cli.tables import print_rows
from imagehub.cli.target import fail
from imagehub.config import load_settings

app = typer.Typer(help="imagehub: image-generation models behind the Oxen.ai inference API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


@app.command()
def serve(host: str | None = typer.Option(None, help="Bind address (IMAGEHUB_HOST)."),
          port: int | None = typer.Option(None, min=1, max=65535, help="Port (IMAGEHUB_PORT)."),
          workers: int | None = typer.Option(None, min=1,
                                             help="Engine slots (IMAGEHUB_WORKER_CONCURRENCY).")) -> None:
    """Start the HTTP server with its in-process workers."""
    import uvicorn

    from imagehub.api.app import create_app
    from imagehub.errors import DataDirBusy
    from imagehub.services.hub import check_config, check_workers_free

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations are routine at start-up
    overrides = {k: v for k, v in {"host": host, "port": port, "worker_concurrency": workers}.items()
                 if v is not None}
    settings = load_settings(**overrides)
    catalog = check_config(settings)  # the catalog file and preloads: one line, not a failed start
    if settings.run_workers:
        try:
            check_workers_free(settings)
        except DataDirBusy as exc:
            fail(exc.detail, exc)
    console.print(f"imagehub serving at [bold]{settings.base_url}[/bold]  (data: {settings.data_dir})")
    if settings.auth_enabled:
        console.print("API keys are required: run [bold]imagehub keys create[/bold] and send "
                      "'Authorization: Bearer <key>'.")
    app = create_app(settings, catalog)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            timeout_keep_alive=settings.http_idle_timeout_seconds)
    logging.getLogger("uvicorn.error").addFilter(_QuietStartupFailure(app))
    try:
        uvicorn.Server(config).run()
    except SystemExit:  # uvicorn's exit when the start-up failed (older ones return instead)
        _fail_if_start_up_failed(app)
        raise
    _fail_if_start_up_failed(app)


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


def _key_service():  # type: ignore[no-untyped-def]
    from imagehub.db.session import make_engine, make_sessionmaker, migrate
    from imagehub.services.keys import KeyService

    settings = load_settings()
    engine = make_engine(settings.resolved_database_url, settings.db_busy_timeout_seconds)
    migrate(engine)
    return KeyService(make_sessionmaker(engine))


@keys_app.command("create")
def keys_create(namespace: str = typer.Option("default", help="The key's namespace."),
                name: str = typer.Option("", help="A label for the key."),
                member_of: list[str] = typer.Option([], help="Other namespaces the key may use.")) -> None:
    """Make a key; it is printed once and stored hashed."""
    if not namespace.strip():
        fail(f"--namespace: {namespace!r} is not a namespace (it must not be empty)", code=2)
    created = _key_service().create(namespace=namespace, name=name, member_of=member_of)
    typer.echo(created.key)
    typer.echo(f"key {created.record.prefix}... for namespace '{namespace}' (shown once; "
               "export IMAGEHUB_API_KEY=<key>)", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only; secrets are never stored); piped, one tab-separated line each."""
    rows = [[record.id, record.prefix + "...", record.name, record.namespace,
             "yes" if record.revoked else ""] for record in _key_service().list()]
    print_rows(console, ("id", "prefix", "name", "namespace", "revoked"), rows, ids=("id", "prefix"))


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id, its prefix as `keys list` "
                                                    "shows it, or the key itself.")) -> None:
    """Revoke a key: it stops working at once."""
    from imagehub.errors import ImagehubError
    from imagehub.services.keys import KEY_PREFIX, PUBLIC_PREFIX_LENGTH

    given = key.removesuffix("...")
    is_secret = given.startswith(KEY_PREFIX) and len(given) > PUBLIC_PREFIX_LENGTH
    service = _key_service()
    try:  # the messages of both name a key by its public prefix at most
        newly = service.revoke(service.id_of(given) if is_secret else given)
    except ImagehubError as exc:
        fail(exc.detail, exc)
    shown = given[:PUBLIC_PREFIX_LENGTH] + "..." if given.startswith(KEY_PREFIX) else given
    typer.echo(f"revoked {shown}" if newly else f"{shown} was revoked already")


@app.command()
def backup(dest: Path = typer.Argument(..., help="A new or empty folder for the copy.")) -> None:
    """Copy the data dir (database, files/, secret, models.toml) into DEST, safely beside a
    running server; restore by copying DEST to a data dir."""
    from imagehub.errors import BackupRefused
    from imagehub.services.backup import DATABASE_NAME, FILES
    from imagehub.services.backup import backup as back_up

    try:
        report = back_up(load_settings(), dest)
    except BackupRefused as exc:
        fail(str(exc), exc)
    typer.echo(f"database: {report.generations} generations, {report.keys} keys, "
               f"{report.database_bytes} bytes -> {dest / DATABASE_NAME}")
    typer.echo(f"files: {report.files} files, {report.file_bytes} bytes -> {dest / FILES}")
    for name in report.copied:
        typer.echo(f"{name} -> {dest / name}")
    for line in report.left:
        typer.echo(f"note: {line}", err=True)


def _mount_client_commands() -> None:
    """generate, models, queue: against IMAGEHUB_URL, or in-process (``imagehub.cli.target``)."""
    from imagehub.cli.generate import generate
    from imagehub.cli.models import models_app
    from imagehub.cli.queue import queue_app

    app.command("generate")(generate)
    app.add_typer(models_app, name="models")
    app.add_typer(queue_app, name="queue")


_mount_client_commands()


def _mount_optional() -> None:
    """Sub-apps that live beside their feature (the built-in model's train/eval)."""
    try:
        from imagehub.cli.builtin import eval_app, train_app
    except ImportError:
        return
    app.add_typer(train_app, name="train", help="Train models (imagehub train builtin).")
    app.add_typer(eval_app, name="eval", help="Evaluate models (imagehub eval builtin).")


_mount_optional()
