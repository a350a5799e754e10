"""LocalStorage: files under its root, written atomically; no key reaches outside the root."""

from __future__ import annotations

import pytest

from imagehub.storage.local import LocalStorage


def test_put_get_and_delete_a_prefix(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    storage.put("gen-1/0.png", b"png bytes", "image/png")

    assert storage.get("gen-1/0.png") == b"png bytes"
    assert not list((tmp_path / "files" / "gen-1").glob("*.tmp"))  # the temp file was renamed
    storage.delete_prefix("gen-1/")
    assert storage.get("gen-1/0.png") is None


def test_a_key_that_escapes_the_root_is_refused(tmp_path):
    storage = LocalStorage(tmp_path / "files")

    with pytest.raises(ValueError, match="escapes the root: '../outside.png'"):
        storage.put("../outside.png", b"x", "image/png")
    assert not (tmp_path / "outside.png").exists()
    assert storage.get("../../etc/passwd") is None


def test_a_root_reached_through_a_symlink_works(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    storage = LocalStorage(tmp_path / "link")

    storage.put("gen-2/0.png", b"data", "image/png")

    assert (tmp_path / "real" / "gen-2" / "0.png").read_bytes() == b"data"
    assert storage.get("gen-2/0.png") == b"data"


def test_writers_of_one_key_at_once_all_succeed_and_leave_no_temp_files(tmp_path):
    """Requests carrying the same input image store it under one name at the same time: each
    write has its own temp file, so no rename finds another's gone."""
    from concurrent.futures import ThreadPoolExecutor

    storage = LocalStorage(tmp_path)
    data = b"x" * 200_000
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: storage.put("inputs/same", data, "image/png"), range(200)))
    assert storage.get("inputs/same") == data
    assert [p.name for p in (tmp_path / "inputs").iterdir()] == ["same"]
