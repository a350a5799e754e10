"""``imagehub models scan`` and ``imagehub models add``: local diffusers pipelines (a Hugging Face
cache laid out as huggingface_hub lays it out, and plain folders) into the catalog file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from imagehub.testing import ServerProcess

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hf_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """``folder`` as huggingface_hub caches a snapshot: files in blobs/ by hash, the snapshot's
    files symlinks to them, refs/main naming the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def env(tmp_path: Path, tiny_sd_dir: Path) -> dict[str, str]:
    hf_cache(tmp_path / "hf", "imagehub-tests/Tiny-SD", tiny_sd_dir)
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "models.toml").write_text("# my models, by hand\n")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEHUB_", "HF_"))}
    return {**keep, "IMAGEHUB_DATA_DIR": str(tmp_path / "hub"), "HF_HUB_CACHE": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}


def imagehub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagehub", *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def test_scan_finds_cached_and_folder_pipelines_and_add_puts_them_in_the_catalog(
        env: dict[str, str], tmp_path: Path, tiny_sd_dir: Path) -> None:
    scanned = imagehub("models", "scan", str(tiny_sd_dir.parent), env=env)
    assert scanned.returncode == 0, scanned.stderr
    rows = {line.split()[-4]: " ".join(line.split()) for line in scanned.stdout.splitlines()
            if "Pipeline" in line}
    assert rows["hf:imagehub-tests/Tiny-SD"] == \
        "│ sd │ yes │ yes │ no │ hf:imagehub-tests/Tiny-SD │ StableDiffusionPipeline │"
    assert str(tiny_sd_dir.resolve()) in rows

    added = imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", env=env)
    assert added.returncode == 0, added.stderr
    catalog = tmp_path / "hub" / "models.toml"
    assert " ".join(added.stdout.split()).startswith(
        f"added tiny-sd (StableDiffusionPipeline, sd) to {catalog}: available.")
    text = catalog.read_text()
    assert text.startswith("# my models, by hand\n")  # the user's file, added to, not rewritten
    assert tomllib.loads(text)["models"]["tiny-sd"] == {
        "backend": "diffusers", "source": "hf:imagehub-tests/Tiny-SD", "display_name": "tiny-sd"}
    again = imagehub("models", "scan", env=env)
    assert "as tiny-sd" in again.stdout

    # a folder, under an id that needs quoting in TOML; then it generates, in-process
    folder = imagehub("models", "add", str(tiny_sd_dir), "--id", "my.model", "--name", "Mine", env=env)
    assert folder.returncode == 0, folder.stderr
    assert tomllib.loads(catalog.read_text())["models"]["my.model"]["source"] == str(tiny_sd_dir.resolve())
    made = imagehub("generate", "a red circle", "-m", "my.model", "--seed", "1",
                    "-o", str(tmp_path / "out"), env=env)
    assert made.returncode == 0, made.stderr
    (png,) = (tmp_path / "out").glob("*.png")
    assert Image.open(png).size == (512, 512)


def test_scan_lists_a_broken_folder_and_add_refuses_it(env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "more" / "broken"
    broken.mkdir(parents=True)
    (broken / "model_index.json").write_text("{not json")
    scanned = imagehub("models", "scan", str(tmp_path / "more"), env=env)
    assert scanned.returncode == 0, scanned.stderr
    assert "? (model_index.json unreadable)" in " ".join(scanned.stdout.split())
    added = imagehub("models", "add", str(broken), env=env)
    assert added.returncode == 1 and added.stderr.startswith(f"error: {broken}: cannot read "), \
        added.stderr
    assert (tmp_path / "hub" / "models.toml").read_text() == "# my models, by hand\n"


def test_a_folder_missing_a_component_is_listed_not_servable_and_add_refuses_it(
        env: dict[str, str], tmp_path: Path, tiny_sd_dir: Path) -> None:
    """A copy that lost its unet (an interrupted download): on paper a pipeline, yet the server
    could not serve it."""
    partial = tmp_path / "more" / "partial"
    shutil.copytree(tiny_sd_dir, partial)
    shutil.rmtree(partial / "unet")
    scanned = imagehub("models", "scan", str(tmp_path / "more"), env=env)
    assert scanned.returncode == 0, scanned.stderr
    row = next(" ".join(line.split()) for line in scanned.stdout.splitlines() if "partial" in line)
    assert row.startswith("│ sd │ yes │ no │ no │"), row
    assert f"not servable: {partial}: {partial} lacks the component folders unet" in \
        " ".join(scanned.stdout.split())
    added = imagehub("models", "add", str(partial), env=env)
    assert added.returncode == 1, added.stderr
    assert added.stderr.startswith(f"error: {partial}: {partial} lacks the component folders unet")
    assert (tmp_path / "hub" / "models.toml").read_text() == "# my models, by hand\n"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["hf:imagehub-tests/Tiny-SD", "--id", "imagehub-tiny"], 2,
     "--id: 'imagehub-tiny' is taken (built-in); choose another with --id"),
    (["hf:imagehub-tests/Tiny-SD", "--id", "-bad"], 2, "--id: '-bad' is not a model id"),
    (["/nonexistent/model"], 1,
     "/nonexistent/model: no diffusers folder at /nonexistent/model (no such folder)"),
    (["hf:someone/missing"], 1, ("hf:someone/missing: hf:someone/missing is not in the local "
                                 "Hugging Face cache")),
])
def test_add_refuses_what_cannot_be_served_and_writes_nothing(
        env: dict[str, str], tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = imagehub("models", "add", *args, env=env)
    assert done.returncode == code and done.stderr.startswith(f"error: {message}"), done.stderr
    assert (tmp_path / "hub" / "models.toml").read_text() == "# my models, by hand\n"


def test_an_id_already_in_the_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    assert imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", env=env).returncode == 0
    done = imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", env=env)
    assert done.returncode == 2
    assert done.stderr == ("error: --id: 'tiny-sd' is taken (models.toml [models.tiny-sd]); "
                           "choose another with --id\n")


def test_a_folder_name_beyond_ascii_keeps_the_file_toml(env: dict[str, str], tmp_path: Path,
                                                        tiny_sd_dir: Path) -> None:
    """JSON would write 😀 as a surrogate pair, which TOML refuses: the entry is written so the
    file still parses, with the path as it is."""
    folder = tmp_path / "models" / "My Model 😀"
    shutil.copytree(tiny_sd_dir, folder)
    done = imagehub("models", "add", str(folder), env=env)
    assert done.returncode == 0, done.stderr
    entry = tomllib.loads((tmp_path / "hub" / "models.toml").read_text())["models"]["my-model"]
    assert entry["source"] == str(folder.resolve())
    listed = imagehub("models", env=env)
    assert listed.returncode == 0 and "my-model" in listed.stdout


def test_a_running_server_serves_a_model_added_beside_it(env: dict[str, str], tmp_path: Path,
                                                         tiny_sd_dir: Path) -> None:
    server = ServerProcess(tmp_path / "hub", {"HF_HUB_CACHE": env["HF_HUB_CACHE"]}).start()
    try:
        with server.client() as api:
            assert api.get("/api/ai/models/tiny-sd").status_code == 404
            added = imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", env=env)
            assert added.returncode == 0, added.stderr
            model = api.get("/api/ai/models/tiny-sd")
            assert model.status_code == 200 and model.json()["available"] is True
            made = api.post("/api/ai/images/generate", json={"model": "tiny-sd", "prompt": "late"})
            assert made.status_code == 200, made.text
            assert "tiny-sd" in [m["id"] for m in api.get("/api/ai/models").json()["data"]]
    finally:
        server.stop()


def test_a_catalog_file_that_is_not_toml_is_one_error_line_and_stays_as_it_is(
        env: dict[str, str], tmp_path: Path) -> None:
    catalog = tmp_path / "hub" / "models.toml"
    catalog.write_text("[models.x\n")
    for args in (["scan"], ["add", "hf:imagehub-tests/Tiny-SD"]):
        done = imagehub("models", *args, env=env)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"error: {catalog}: not valid TOML")
        assert len(done.stderr.strip().splitlines()) == 1
    assert catalog.read_text() == "[models.x\n"


def test_add_writes_card_options_given_with_set(env: dict[str, str], tmp_path: Path) -> None:
    """``--set KEY=VALUE`` writes card options, each value read as TOML (else as text); the
    server-side check binds the entry, so its default applies at once."""
    done = imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", "--set", "compile=off",
                    "--set", "channels_last=true", "--set", "warmup_batches=[1, 2]",
                    "--set", "defaults={num_inference_steps = 3}", "--set", 'dtype="fp32"', env=env)
    assert done.returncode == 0, done.stderr
    entry = tomllib.loads((tmp_path / "hub" / "models.toml").read_text())["models"]["tiny-sd"]
    assert entry == {"backend": "diffusers", "source": "hf:imagehub-tests/Tiny-SD",
                     "display_name": "tiny-sd", "compile": "off", "channels_last": True,
                     "warmup_batches": [1, 2], "defaults": {"num_inference_steps": 3},
                     "dtype": "fp32"}
    shown = imagehub("models", "show", "tiny-sd", env=env)
    assert shown.returncode == 0, shown.stderr
    steps = next(line for line in shown.stdout.splitlines() if "num_inference_steps" in line)
    assert " 3 " in f" {steps} ", steps


@pytest.mark.parametrize(("setting", "message"), [
    ("compile=fast", "compile must be off, regional or full, not 'fast'; nothing was written"),
    ("colour=red", "colour: not a key of this backend (keys: device, dtype,"),
    ("cuda_graphs=yes", "cuda_graphs: 'yes' must be true or false; nothing was written"),
    ("defaults={steps = 2}", "defaults: steps: unknown field"),
    ("source=/elsewhere", "error: --set: source is written by models add itself"),
    ("display_name=Mine", "error: --set: display_name is written by models add itself; use --name"),
    ("compile", "error: --set: 'compile' is not KEY=VALUE"),
])
def test_add_refuses_set_options_the_server_would_refuse(
        env: dict[str, str], tmp_path: Path, setting: str, message: str) -> None:
    done = imagehub("models", "add", "hf:imagehub-tests/Tiny-SD", "--set", setting, env=env)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.startswith("error: --set: ") and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "hub" / "models.toml").read_text() == "# my models, by hand\n"
