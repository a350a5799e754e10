"""``imagehub serve``, ``imagehub keys`` and ``imagehub backup``; errors print one line and exit
non-zero."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import typer

from imagehub import __version__
from imagehub.cli.console import make_console
from imagehub.cli.tables import print_rows
from imagehub.cli.target import fail
from imagehub.config import Settings, load_settings

app = typer.Typer(help="imagehub: image-generation models behind the Oxen.ai inference API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = make_console()


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"imagehub {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """imagehub: image-generation models behind the Oxen.ai inference API."""


@app.command()
def serve(host: str | None = typer.Option(None, help="Bind address (IMAGEHUB_HOST)."),
          port: int | None = typer.Option(None, min=1, max=65535, help="Port (IMAGEHUB_PORT)."),
          workers: int | None = typer.Option(None, min=1,
                                             help="Engine slots (IMAGEHUB_WORKER_CONCURRENCY).")) -> None:
    """Start the HTTP server with its in-process workers."""
    from imagehub.cli.serve import run

    overrides = {k: v for k, v in {"host": host, "port": port, "worker_concurrency": workers}.items()
                 if v is not None}
    run(_banner, **overrides)


def _banner(settings: Settings) -> None:
    """Said once the server listens (a start that fails says only its error)."""
    console.print(f"imagehub serving at [bold]{settings.base_url}[/bold]  (data: {settings.data_dir})")
    if settings.auth_enabled:
        console.print("API keys are required: run [bold]imagehub keys create[/bold] and send "
                      "'Authorization: Bearer <key>'.")


def _key_service():  # type: ignore[no-untyped-def]
    from imagehub.db.session import make_engine, make_sessionmaker, migrate
    from imagehub.services.keys import KeyService

    settings = load_settings()
    engine = make_engine(settings.resolved_database_url, settings.db_busy_timeout_seconds)
    migrate(engine)
    return KeyService(make_sessionmaker(engine))


NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A namespace as users and organisations are named (``ox``, ``my-team``)."""


@keys_app.command("create")
def keys_create(namespace: str = typer.Option("default", help="The key's namespace."),
                name: str = typer.Option("", help="A label for the key."),
                member_of: list[str] = typer.Option([], help="Other namespaces the key may use.")) -> None:
    """Make a key; it is printed once and stored hashed."""
    for option, value in [("--namespace", namespace), *(("--member-of", m) for m in member_of)]:
        if not NAMESPACE.fullmatch(value):
            fail(f"{option}: {value!r} is not a namespace (letters, digits, '.', '_' and '-', "
                 "starting with a letter or digit, at most 128)", code=2)
    created = _key_service().create(namespace=namespace, name=name, member_of=member_of)
    typer.echo(created.key)
    typer.echo(f"key {created.record.prefix}... for namespace '{namespace}' (shown once; "
               "export IMAGEHUB_API_KEY=<key>)", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only; secrets are never stored); piped, one tab-separated line each."""
    rows = [[record.id, record.prefix + "...", record.name, record.namespace,
             "yes" if record.revoked else "", utc_time(record.created_at)]
            for record in _key_service().list()]
    print_rows(console, ("id", "prefix", "name", "namespace", "revoked", "created"), rows,
               ids=("id", "prefix"))


def utc_time(seconds: float) -> str:
    """``2025-01-31T09:05:00Z``: UTC, to the second, whatever the machine's time zone."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
