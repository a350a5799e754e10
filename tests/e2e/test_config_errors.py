"""A configuration mistake is said once, clearly: ``serve`` exits with one line for a catalog file
that is not TOML or a preloaded model that cannot serve; a broken entry leaves the rest of the
server working, listed unavailable with its reason, and a request for it answers 503 with that
reason before any of its fields are checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ServerProcess, free_port, write_catalog
from sqlalchemy import text

from imagehub.config import load_settings
from imagehub.db.session import make_engine, migrate
from imagehub.errors import DataDirBusy
from imagehub.services.hub import _take_worker_lock

BROKEN = '\n[models.broken]\nsource = "{source}"\ndevice = "cpu"\ncompille = true\n'


def _serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagehub", "serve"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "IMAGEHUB_DATA_DIR": str(data_dir), **env})


def test_serve_says_in_one_line_what_is_wrong(tmp_path: Path, tiny_sd_dir: Path) -> None:
    (tmp_path / "models.toml").write_text('[models.my-sd]\nsource = "/x\n')
    bad_toml = _serve(tmp_path)
    write_catalog(tmp_path, tiny_sd_dir)
    with open(tmp_path / "models.toml", "a") as catalog:
        catalog.write(BROKEN.format(source=tiny_sd_dir))
    bad_preload = _serve(tmp_path, IMAGEHUB_PRELOAD_MODELS="tiny-sd,broken")
    bad_port = _serve(tmp_path, IMAGEHUB_PORT="abc")
    bad_public_url = _serve(tmp_path, IMAGEHUB_PUBLIC_URL="images.example.com")
    bad_allow = _serve(tmp_path, IMAGEHUB_FETCH_ALLOW="10.0.0.0/88")
    for done, words in ((bad_toml, ["models.toml: not valid TOML", "line 2"]),
                        (bad_preload, ["IMAGEHUB_PRELOAD_MODELS: broken", "compille"]),
                        (bad_port, ["IMAGEHUB_PORT='abc'"]),
                        (bad_public_url, ["IMAGEHUB_PUBLIC_URL='images.example.com'"]),
                        (bad_allow, ["IMAGEHUB_FETCH_ALLOW='10.0.0.0/88'"])):
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode == 1 and len(errors) == 1, done.stderr
        assert "Traceback" not in done.stderr and "serving at" not in done.stdout, done
        for word in words:
            assert word in errors[0], (word, errors[0])


def test_a_preloaded_model_that_cannot_load_stops_serve_in_one_line(tmp_path: Path,
                                                                   tiny_sd_dir: Path) -> None:
    """The checks before start-up pass (the entry is sound on paper); the load itself fails, in
    the app's start-up: damaged weights, or a budget the model cannot fit."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_sd_dir, damaged)
    (damaged / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    write_catalog(tmp_path / "data", damaged)
    bad_weights = _serve(tmp_path / "data", IMAGEHUB_PRELOAD_MODELS="tiny-sd")
    write_catalog(tmp_path / "data", tiny_sd_dir)
    too_big = _serve(tmp_path / "data", IMAGEHUB_PRELOAD_MODELS="tiny-sd",
                     IMAGEHUB_MODEL_MEMORY_BUDGET_GB="0.0001")
    for done, words in ((bad_weights, ["IMAGEHUB_PRELOAD_MODELS: tiny-sd could not be loaded",
                                       "not a readable safetensors file"]),
                        (too_big, ["IMAGEHUB_PRELOAD_MODELS: tiny-sd could not be loaded",
                                   "more than the whole model memory budget"])):
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode == 1 and len(errors) == 1, done.stderr
        assert "Traceback" not in done.stderr and "startup failed" not in done.stderr, done.stderr
        for word in words:
            assert word in errors[0], (word, errors[0])


def test_a_database_a_newer_imagehub_made_stops_serve_and_keys_in_one_line(tmp_path: Path) -> None:
    """A rolled-back deploy: the database's schema is past this code's newest migration."""
    engine = make_engine(f"sqlite:///{tmp_path / 'imagehub.db'}")
    migrate(engine)
    with engine.begin() as conn:  # what a newer imagehub's next migration would leave
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        newer = f"{int(current) + 1:04d}"
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    engine.dispose()
    served = _serve(tmp_path, IMAGEHUB_PORT=str(free_port()))
    listed = subprocess.run([sys.executable, "-m", "imagehub", "keys", "list"], capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**os.environ, "IMAGEHUB_DATA_DIR": str(tmp_path)})
    for done in (served, listed):
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode == 1 and len(errors) == 1, done.stderr
        assert "Traceback" not in done.stderr and "startup failed" not in done.stderr, done.stderr
        assert f"has schema {newer}, newer than this imagehub's {current}: run the imagehub" in errors[0]


def test_a_broken_entry_is_listed_unavailable_and_answers_503(tmp_path: Path, tiny_sd_dir: Path) -> None:
    write_catalog(tmp_path, tiny_sd_dir)
    with open(tmp_path / "models.toml", "a") as catalog:
        catalog.write(BROKEN.format(source=tiny_sd_dir) + '\n[models.late]\nsource = "x"\ncreated = "yesterday"\n')
    server = ServerProcess(tmp_path).start()
    try:
        with server.client() as api:
            listed = {m["id"]: m for m in api.get("/api/ai/models").json()["data"]}
            assert listed["tiny-sd"]["available"] and not listed["broken"]["available"]
            assert "did you mean 'compile'" in listed["broken"]["unavailable_reason"]
            assert "created: 'yesterday'" in listed["late"]["unavailable_reason"]
            r = api.post("/api/ai/images/generate",
                         json={"model": "broken", "prompt": "x", "aspect_ratio": "1:1"})
            assert r.status_code == 503 and "compille" in r.json()["error"]["detail"], r.text
            ok = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "x"})
            assert ok.status_code == 200, ok.text
    finally:
        server.stop()


def test_a_busy_data_dir_names_who_holds_it(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    held = _take_worker_lock(settings, "an in-process imagehub command")
    try:
        _take_worker_lock(settings, "a second one")
        raise AssertionError("the lock was taken twice")
    except DataDirBusy as exc:
        assert f"an in-process imagehub command (pid {os.getpid()})" in exc.detail
        assert "if it is a server" in exc.detail
    finally:
        held.release()
