"""Upgrading a database an older imagehub made: its rows survive and read as before, and the
upgrade is logged once. A database a newer imagehub made is refused in one line."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from imagehub.db.session import MIGRATIONS_DIR, make_engine, migrate
from imagehub.errors import ConfigError

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
from imagehub.testing import ServerProcess


def test_rows_made_before_0002_read_through_the_api_after_the_upgrade(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    engine = make_engine(f"sqlite:///{data_dir / 'imagehub.db'}")
    migrate(engine, "0001")
    now = int(time.time())
    with engine.begin() as conn:  # a failed generation as 0001's table holds it
        conn.execute(text(
            "INSERT INTO generations (id, namespace, key_id, model_name, media_type, source, prompt,"
            " params, resolved, provenance, status, num_images, images, error_message, progress,"
            " attempts, idempotency_key, enqueued_at, order_key, started_at, completed_at) VALUES"
            " ('old-row', 'default', NULL, 'imagehub-tiny', 'image', 'queue', 'a red cube',"
            " :params, :resolved, '{}', 'failed', 1, '[]', 'it broke', NULL, 1, NULL, :now,"
            " :order, :now, :now)"),
            {"params": json.dumps({"prompt": "a red cube", "aspect_ratio": "1:1"}),
             "resolved": json.dumps({"prompt": "a red cube", "seed": 5}), "now": now,
             "order": now * 10**9})
    engine.dispose()

    server = ServerProcess(data_dir).start()  # its `keys create` upgrades the database first
    try:
        with server.client() as api:
            row = api.get("/api/ai/queue/old-row")
            assert row.status_code == 200, row.text
            body = row.json()
            assert (body["prompt"], body["aspect_ratio"], body["seed"]) == ("a red cube", "1:1", 5)
            assert (body["status"], body["error_message"]) == ("failed", "it broke")
            assert not {"carried", "target_namespace", "num_generations", "n"} & body.keys()
            new = api.post("/api/ai/queue", json={"model": "imagehub-tiny", "prompt": "a blue ball",
                                                  "num_generations": 1})
            assert new.status_code == 200, new.text
            new_id = new.json()["generations"][0]["generation_id"]
            assert api.get(f"/api/ai/queue/{new_id}").json()["num_generations"] == 1
    finally:
        server.stop()


def test_0003_takes_the_keys_earlier_requests_used(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'imagehub.db'}")
    migrate(engine, "0002")
    now = int(time.time())
    with engine.begin() as conn:  # one request of two rows under key "k", one row without a key
        for n, key in enumerate(["k", "k", None]):
            conn.execute(text(
                "INSERT INTO generations (id, namespace, model_name, media_type, source, params,"
                " resolved, provenance, status, num_images, images, attempts, idempotency_key,"
                " enqueued_at, order_key, carried) VALUES (:id, 'team', 'imagehub-tiny', 'image',"
                " 'queue', '{}', '{}', '{}', 'queued', 1, '[]', 0, :key, :now, :order, '{}')"),
                {"id": f"row-{n}", "key": key, "now": now + n, "order": n})
    migrate(engine)
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT namespace, idempotency_key, created_at "
                                 "FROM idempotency_keys")).all()
    engine.dispose()
    assert [tuple(k) for k in keys] == [("team", "k", now)]


def test_an_upgrade_is_one_info_line_and_an_up_to_date_database_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'imagehub.db'}")
    caplog.set_level(logging.INFO, logger="imagehub.db.session")
    migrate(engine, "0002")
    migrate(engine)
    migrate(engine)
    engine.dispose()
    assert [r.getMessage() for r in caplog.records if r.name == "imagehub.db.session"] == [
        "database created at schema 0002", f"database upgraded from 0002 to {HEAD}"]


def test_a_database_newer_than_the_code_is_refused_naming_both_schemas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'imagehub.db'}")
    migrate(engine)
    newer = f"{int(HEAD) + 1:04d}"
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    with pytest.raises(ConfigError) as refused:
        migrate(engine)
    engine.dispose()
    assert str(refused.value) == (
        f"the database at sqlite:///{tmp_path / 'imagehub.db'} has schema {newer}, newer than this "
        f"imagehub's {HEAD}: run the imagehub that made it, or restore the backup taken before "
        "upgrading")
