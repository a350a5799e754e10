"""Connecting to the store and bringing its schema up to date with Alembic."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from imagehub.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite gets WAL, cross-thread use and a busy timeout: how long a
    write waits for another connection's write lock before it fails ("database is locked")."""
    if url.startswith("sqlite"):
        _check_sqlite_version()
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=int(busy_timeout * 1000)))
        return engine
    return create_engine(url, pool_pre_ping=True)


SQLITE_MIN = (3, 35)
"""The queue claims and reports progress with UPDATE ... RETURNING (SQLite 3.35, 2021)."""


def _check_sqlite_version() -> None:
    import sqlite3

    if sqlite3.sqlite_version_info < SQLITE_MIN:
        raise ConfigError(f"IMAGEHUB_DATABASE_URL: SQLite {sqlite3.sqlite_version} is too old "
                          f"(imagehub needs {'.'.join(map(str, SQLITE_MIN))} or newer, for "
                          "UPDATE ... RETURNING); use a Python built with a newer SQLite, or "
                          "PostgreSQL")


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
    """Upgrade the schema to ``revision``, by default the newest (idempotent); one INFO line when
    it changed anything. ConfigError for a database a newer imagehub made (a rolled-back deploy):
    this code cannot read its schema, and the message says what to do."""
    from alembic import command

    cfg = _alembic_config()
    with _one_migration_at_a_time(engine), engine.begin() as conn:
        before = _schema_of(conn)
        _check_known(cfg, before, engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = _schema_of(conn)
    if before is None:
        log.info("database created at schema %s", after)
    elif after != before:
        log.info("database upgraded from %s to %s", before, after)


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _schema_of(conn: Connection) -> str | None:
    """The database's Alembic revision; None for a new database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _check_known(cfg: Config, current: str | None, engine: Engine) -> None:
    """ConfigError if the database's revision is not one of this code's migrations."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    if current is None or current in {r.revision for r in script.walk_revisions()}:
        return
    head = script.get_current_head() or "none"
    numbered = current.isdigit() and head.isdigit()
    newer = "newer than" if numbered and int(current) > int(head) else "unknown to"
    url = engine.url.render_as_string(hide_password=True)
    raise ConfigError(f"the database at {url} has schema {current}, {newer} this imagehub's "
                      f"{head}: run the imagehub that made it, or restore the backup taken before "
                      "upgrading")


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
