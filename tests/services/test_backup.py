"""What ``imagehub backup`` copies and what it refuses, in-process (``tests/e2e/test_backup.py``
backs up a working server)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from imagehub.config import Settings
from imagehub.db.session import make_engine, migrate
from imagehub.errors import BackupRefused
from imagehub.services.backup import backup


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir with a database, one image, a secret and a catalog file."""
    data = tmp_path / "data"
    engine = make_engine(f"sqlite:///{data / 'imagehub.db'}")
    migrate(engine)
    engine.dispose()
    (data / "files" / "g1").mkdir(parents=True)
    (data / "files" / "g1" / "0.png").write_bytes(b"\x89PNG" + b"x" * 96)
    (data / "files" / "g1" / ".0.png.abc.tmp").write_bytes(b"half")  # a write in progress
    (data / "secret").write_text("s3cret")
    (data / "models.toml").write_text("[models]\n")
    return data


def test_the_copy_is_a_data_dir_with_the_rows_still_in_the_wal(data_dir: Path, tmp_path: Path) -> None:
    writer = sqlite3.connect(data_dir / "imagehub.db")  # open: nothing is checkpointed at close
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("INSERT INTO api_keys (id, secret_hash, prefix, name, namespace, member_of, "
                   "revoked, created_at) VALUES ('k1', 'h', 'ih_x', '', 'default', '[]', 0, 0)")
    writer.commit()
    assert (data_dir / "imagehub.db-wal").stat().st_size > 0
    try:
        report = backup(Settings(data_dir=data_dir), tmp_path / "backup")
    finally:
        writer.close()
    dest = tmp_path / "backup"
    assert sorted(p.name for p in dest.iterdir()) == ["files", "imagehub.db", "models.toml", "secret"]
    assert sorted(p.name for p in (dest / "files" / "g1").iterdir()) == ["0.png"]
    assert (report.generations, report.keys, report.files, report.file_bytes) == (0, 1, 1, 100)
    assert report.copied == ["secret", "models.toml"] and report.left == []
    with sqlite3.connect(dest / "imagehub.db") as copy:
        assert copy.execute("SELECT id FROM api_keys").fetchall() == [("k1",)]


def test_a_folder_with_something_in_it_is_refused(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    (tmp_path / "a-file").write_text("")
    for dest in (tmp_path / "full", tmp_path / "a-file"):
        with pytest.raises(BackupRefused, match="exists and is not an empty folder"):
            backup(Settings(data_dir=data_dir), dest)
    with pytest.raises(BackupRefused, match="which the backup copies"):
        backup(Settings(data_dir=data_dir), data_dir / "files" / "backup")
    backup(Settings(data_dir=data_dir), tmp_path / "empty")  # a new folder
    assert (tmp_path / "empty" / "imagehub.db").is_file()


def test_another_database_is_refused_naming_its_own_tool(data_dir: Path, tmp_path: Path) -> None:
    # built past the settings' checks: no PostgreSQL driver is installed here to pass them
    settings = Settings(data_dir=data_dir).model_copy(
        update={"database_url": "postgresql+psycopg://u:pw@db/imagehub"})
    with pytest.raises(BackupRefused) as refused:
        backup(settings, tmp_path / "backup")
    assert str(refused.value).startswith("IMAGEHUB_DATABASE_URL is a postgresql database: back it "
                                         "up with its own tool (pg_dump for PostgreSQL), then copy")
    assert "pw" not in str(refused.value) and not (tmp_path / "backup").exists()


def test_a_catalog_outside_the_data_dir_or_a_configured_secret_is_said_not_copied(
        data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text("[models]\n")
    (data_dir / "secret").unlink()
    settings = Settings(data_dir=data_dir, catalog_path=tmp_path / "elsewhere.toml",
                        signing_secret="a shared secret of some length")
    report = backup(settings, tmp_path / "backup")
    assert report.copied == []
    assert report.left == ["the signing secret is IMAGEHUB_SIGNING_SECRET's: keep it with the backup",
                           f"{tmp_path / 'elsewhere.toml'}: outside the data dir, not copied"]
