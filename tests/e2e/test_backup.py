"""``imagehub backup`` beside a server at work: a second server started on the copy has every
row the first had answered, the key made after the first started, and every image of every
succeeded row."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from conftest import ServerProcess, write_catalog
from tests_helpers import wait_for_status

from imagehub.db.session import make_engine, migrate


def _sync_until(api: httpx.Client, stop: threading.Event, ids: list[str]) -> None:
    """Sync generations one after another until ``stop``: writes while the backup reads."""
    while not stop.is_set():
        made = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "during"})
        assert made.status_code == 200, made.text
        ids.append(made.json()["generation_id"])


def _backup(server: ServerProcess, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagehub", "backup", str(dest)], env=server.env,
                          capture_output=True, text=True, timeout=120, check=False)


def _backed_up(dest: Path) -> dict[str, str]:
    with sqlite3.connect(dest / "imagehub.db") as db:
        return dict(db.execute("SELECT id, status FROM generations").fetchall())


def test_a_backup_beside_a_working_server_restores_rows_keys_and_images(
        tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path / "live", tiny_sd_dir, **{"tiny-sd-slow": 40})
    live = ServerProcess(tmp_path / "live").start()
    stop, during = threading.Event(), []
    try:
        late_key = live.cli("keys", "create", "--name", "made-after-start").stdout.strip()
        with live.client() as api, live.client() as sync_api:
            before = [api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "sync"})
                      .json()["generation_id"] for _ in range(2)]
            for model, n in (("tiny-sd", 3), ("tiny-sd-slow", 2)):
                before += [g["generation_id"] for g in api.post("/api/ai/queue", json={
                    "model": model, "prompt": "queued", "num_generations": n}).json()["generations"]]
            wait_for_status(api, before[4], {"succeeded"})  # the quick ones are done
            assert (live.data_dir / "imagehub.db-wal").stat().st_size > 0  # a plain copy's trap
            writer = threading.Thread(target=_sync_until, args=(sync_api, stop, during))
            writer.start()
            done = _backup(live, tmp_path / "backup")
            stop.set()
            writer.join(60)
    finally:
        stop.set()
        live.stop()
    assert done.returncode == 0, done.stderr
    rows = _backed_up(tmp_path / "backup")
    assert set(before) <= rows.keys(), set(before) - rows.keys()
    assert [rows[i] for i in before[:5]] == ["succeeded"] * 5
    assert f"database: {len(rows)} generations, 2 keys," in done.stdout
    assert "secret -> " in done.stdout and "models.toml -> " in done.stdout

    restored = ServerProcess(tmp_path / "backup", {"IMAGEHUB_RUN_WORKERS": "false"}).start()
    try:
        with restored.client(late_key) as api:
            for generation_id, status in rows.items():
                row = api.get(f"/api/ai/queue/{generation_id}")
                assert row.status_code == 200, row.text
                assert row.json()["status"] == status
                images = row.json().get("images") or []
                assert len(images) == (1 if status == "succeeded" else 0), row.json()
                for image in images:
                    png = api.get(image["url"])
                    assert png.status_code == 200 and png.content[:4] == b"\x89PNG", image["url"]
            assert sum(s == "succeeded" for s in rows.values()) >= 5
    finally:
        restored.stop()


def test_a_backup_refuses_a_folder_with_something_in_it(tmp_path: Path) -> None:
    migrate(make_engine(f"sqlite:///{tmp_path / 'data' / 'imagehub.db'}"))
    dest = tmp_path / "backup"
    dest.mkdir()
    (dest / "old").write_text("keep me")
    env = {**os.environ, "IMAGEHUB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "imagehub", "backup", str(dest)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr == f"error: {dest}: exists and is not an empty folder\n"
    assert [p.name for p in dest.iterdir()] == ["old"]
