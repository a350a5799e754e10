"""``imagehub backup DEST``: a copy of a data dir that a running server may be writing to.

The database first, through SQLite's online backup API: one consistent snapshot, with what is
still in ``imagehub.db-wal`` (a copy of the file alone misses the newest rows). Then ``files/``:
images are written before their rows, so every image a copied row names is there already. Then
the signing secret and the catalog file. DEST is laid out as a data dir: restoring is copying it
to one.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from imagehub.config import Settings
from imagehub.db.session import sqlite_file
from imagehub.errors import BackupRefused

DATABASE_NAME = "imagehub.db"
"""The database's name in DEST whatever its name here: the default of a data dir."""
FILES = "files"
SECRET = "secret"


@dataclass
class BackupReport:
    """What a backup copied."""

    generations: int = 0
    keys: int = 0
    database_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    copied: list[str] = field(default_factory=list)
    """The other files copied (the secret, the catalog file), by name."""
    left: list[str] = field(default_factory=list)
    """What was not copied and why, one line each."""


def backup(settings: Settings, dest: Path) -> BackupReport:
    """Copy the data dir of ``settings`` into ``dest`` (new, or an empty folder); BackupRefused
    for a database that is not a SQLite file, or a ``dest`` that holds something."""
    database = _database_file(settings)
    _check_dest(dest, settings.data_dir / FILES)
    dest.mkdir(parents=True, exist_ok=True)
    report = BackupReport()
    # 1. The database: one snapshot, before the files its rows name
    _copy_database(database, dest / DATABASE_NAME, settings.db_busy_timeout_seconds, report)
    # 2. The images and stored input images
    for size in _copy_tree(settings.data_dir / FILES, dest / FILES):
        report.files += 1
        report.file_bytes += size
    # 3. The signing secret and the catalog file
    _copy_extras(settings, dest, report)
    return report


def _database_file(settings: Settings) -> Path:
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        backend = url.split(":", 1)[0].split("+", 1)[0]
        raise BackupRefused(
            f"IMAGEHUB_DATABASE_URL is a {backend} database: back it up with its own tool "
            f"(pg_dump for PostgreSQL), then copy {settings.data_dir / FILES} and the signing "
            f"secret ({settings.data_dir / SECRET} or IMAGEHUB_SIGNING_SECRET)")
    database = sqlite_file(url)
    if database is None:
        raise BackupRefused("IMAGEHUB_DATABASE_URL is an in-memory database: nothing to back up")
    if not database.is_file():
        raise BackupRefused(f"no database at {database}: nothing to back up")
    return database


def _check_dest(dest: Path, files: Path) -> None:
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise BackupRefused(f"{dest}: exists and is not an empty folder")
    if dest.resolve().is_relative_to(files.resolve()):
        raise BackupRefused(f"{dest}: inside {files}, which the backup copies")


def _copy_database(database: Path, target: Path, busy_timeout: float, report: BackupReport) -> None:
    """SQLite's online backup, in one step: a snapshot as of one moment, WAL included; the
    server's writers are not held up (a WAL reader blocks no writer)."""
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=rw", uri=True,
                             timeout=busy_timeout)
    with closing(source), closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
        report.generations = copy.execute("SELECT count(*) FROM generations").fetchone()[0]
        report.keys = copy.execute("SELECT count(*) FROM api_keys").fetchone()[0]
    report.database_bytes = target.stat().st_size


def _copy_tree(source: Path, target: Path) -> Iterator[int]:
    """Copy every file under ``source``, yielding each one's size. A file gone meanwhile (a
    failed generation's images, an input image no longer needed) is skipped, and so is a
    temporary file being written (its row is not in the copied database)."""
    for folder, _dirs, names in os.walk(source):
        into = target / Path(folder).relative_to(source)
        into.mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            if name.startswith(".") and name.endswith(".tmp"):  # LocalStorage.put's, mid-write
                continue
            try:
                shutil.copy2(Path(folder) / name, into / name)
            except FileNotFoundError:
                continue
            yield (into / name).stat().st_size


def _copy_extras(settings: Settings, dest: Path, report: BackupReport) -> None:
    secret = settings.data_dir / SECRET
    if secret.is_file():
        shutil.copy2(secret, dest / SECRET)
        report.copied.append(SECRET)
    if settings.signing_secret:
        report.left.append("the signing secret is IMAGEHUB_SIGNING_SECRET's: keep it with the backup")
    catalog = settings.resolved_catalog_path
    if not catalog.is_file():
        return
    if catalog.resolve().parent == settings.data_dir.resolve():
        shutil.copy2(catalog, dest / catalog.name)
        report.copied.append(catalog.name)
    else:
        report.left.append(f"{catalog}: outside the data dir, not copied")
