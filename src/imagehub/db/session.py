"""Connecting to the store and bringing its schema up to date with Alembic."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite gets WAL, cross-thread use and a busy timeout: how long a
    write waits for another connection's write lock before it fails ("database is locked")."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=int(busy_timeout * 1000)))
        return engine
    return create_engine(url, pool_pre_ping=True)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn, _record, busy_ms: int) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (kill -9)
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``, by default the newest (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _one_migration_at_a_time(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _one_migration_at_a_time(engine: Engine) -> AbstractContextManager[object]:
    """A SQLite file's migrations one process at a time (a lock file beside it): two first starts
    on a new data dir would both create the tables, and one would fail."""
    database = sqlite_file(engine.url.render_as_string(hide_password=False))
    if database is None:
        return nullcontext()
    from filelock import FileLock

    return FileLock(database.with_name(f"{database.name}.migrate.lock"))


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
