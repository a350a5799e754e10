"""``imagehub generate | models | queue`` as a user runs them: subprocesses against the real
server (IMAGEHUB_URL + IMAGEHUB_API_KEY), and in-process over a local data dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ServerProcess, write_catalog
from PIL import Image
from tests_helpers import wait_for_status

from imagehub.cli.queue import HEADERS, _cells, _Watch
from imagehub.cli.target import RemoteTarget


def imagehub(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagehub", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def remote(server: ServerProcess) -> dict[str, str]:
    return {**os.environ, "IMAGEHUB_URL": server.url, "IMAGEHUB_API_KEY": server.key,
            "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def test_generate_against_the_server(remote: dict[str, str], tmp_path: Path, api: httpx.Client) -> None:
    done = imagehub("generate", "a red circle", "-m", "tiny-sd", "--aspect-ratio", "16:9",
                    "--resolution", "512", "--seed", "7", "-n", "2", "-o", str(tmp_path / "out"),
                    env=remote)
    assert done.returncode == 0, done.stderr
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(p).size == (688, 384) for p in pngs)
    assert done.stderr.count("saved ") == 2 and "2/2" in done.stderr and "done" in done.stderr
    # the same request as the API's: the CLI's flags became the model's fields, seeds count up
    rows = [api.get(f"/api/ai/queue/{p.stem}").json() for p in pngs]
    assert sorted(r["seed"] for r in rows) == [7, 8]
    assert all((r["model_name"], r["prompt"], r["aspect_ratio"], r["resolution"]) ==
               ("tiny-sd", "a red circle", "16:9", "512") for r in rows)


def test_generate_in_process_without_a_server(tmp_path: Path, tiny_sd_dir: Path) -> None:
    data_dir = tmp_path / "hub"
    write_catalog(data_dir, tiny_sd_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGEHUB_URL", "IMAGEHUB_API_KEY")}
    env.update(IMAGEHUB_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", COLUMNS="200")
    args = ("generate", "a blue square", "-m", "tiny-sd", "--seed", "3", "-p",
            "num_inference_steps=3", "--idempotency-key", "local-1", "-o", str(tmp_path / "out"))
    done = imagehub(*args, env=env)
    assert done.returncode == 0, done.stderr
    (png,) = (tmp_path / "out").glob("*.png")
    assert Image.open(png).size == (512, 512)
    assert "3/3" in done.stderr
    listed = imagehub("queue", "ls", "--status", "succeeded", env=env)
    assert listed.returncode == 0 and png.stem in listed.stdout
    again = imagehub(*args, env=env)  # the same generation, ended: saved again, none queued
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("saved ") == 1 and [png] == list((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "x", "-m", "tiny-sd", "--aspect-ratio", "7:3"],
     "error: 400 invalid_params: aspect_ratio: '7:3' is not one of"),
    (["generate", "x", "-m", "no-such-model"], "error: 404 resource_not_found: Model not found: no-such-model"),
    (["generate", "x", "-m", "tiny-sd", "-p", "colour=red"], "error: 400 invalid_params: colour: unknown field"),
    (["models", "show", "nope"], "error: 404 resource_not_found: Model not found: nope"),
    (["queue", "cancel", "00000000-0000-0000-0000-000000000000"],
     "error: 404 resource_not_found: Generation not found"),
])
def test_errors_print_one_line_and_exit_non_zero(remote: dict[str, str], tmp_path: Path,
                                                 args: list[str], message: str) -> None:
    done = imagehub(*args, env=remote)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(message) and len(done.stderr.strip().splitlines()) == 1


def test_connection_and_key_errors(remote: dict[str, str]) -> None:
    bad_key = imagehub("models", env={**remote, "IMAGEHUB_API_KEY": "ih_wrong"})
    assert bad_key.returncode == 1 and bad_key.stderr.startswith("error: 401 unauthenticated:")
    nowhere = imagehub("models", env={**remote, "IMAGEHUB_URL": "http://127.0.0.1:9"})
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith("error: cannot reach the server at http://127.0.0.1:9:")
    assert len(nowhere.stderr.strip().splitlines()) == 1


def test_models_and_models_show(remote: dict[str, str]) -> None:
    listed = imagehub("models", env=remote)
    assert listed.returncode == 0, listed.stderr
    assert "tiny-sd-slow" in listed.stdout and "Tiny SD (2 steps)" in listed.stdout
    rows = [line.split("\t") for line in listed.stdout.splitlines()]  # piped: one line a model
    assert ["google-nano-banana-pro", "Nano Banana Pro", "gemini"] in [r[:3] for r in rows]
    assert all(len(r) == 5 for r in rows)
    shown = imagehub("models", "show", "tiny-sd", env=remote)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    fields = [line.split("│")[1].strip() for line in lines if line.startswith("│")
              and line.split("│")[1].strip()]
    schema = httpx.get(f"{remote['IMAGEHUB_URL']}/api/ai/models/tiny-sd",
                       headers={"Authorization": f"Bearer {remote['IMAGEHUB_API_KEY']}"}).json()[
        "request_schema"]
    basic = sorted(schema["basic"], key=lambda f: schema["properties"][f].get("x-order", 99))
    assert fields[:len(basic)] == ["prompt *", *basic[1:]]  # basic fields first, in x-order
    assert set(fields) == {"prompt *", *schema["properties"]} - {"prompt"}
    steps = next(line for line in lines if "num_inference_steps" in line)
    assert "16:9" in shown.stdout and "2" in steps and "1.." in steps


def test_queue_ls_watch_cancel(remote: dict[str, str], api: httpx.Client) -> None:
    ids = [g["generation_id"] for g in api.post(
        "/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "a long wait",
                               "num_generations": 2}).json()["generations"]]
    watcher = subprocess.Popen([sys.executable, "-m", "imagehub", "queue", "watch",
                                *(i[:8] for i in ids)],  # prefixes, as the tables show them
                               env=remote, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_status(api, ids[0], {"processing"})
        listed = imagehub("queue", "ls", env=remote)
        assert listed.returncode == 0 and all(i in listed.stdout for i in ids)
        cancelled = imagehub("queue", "cancel", *ids, env=remote)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.splitlines() == [f"cancelled {i}" for i in ids]
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert out.count("cancelled") >= 2 and all(i in out for i in ids)
    # piped: a tab-separated line each time a generation changes, the last saying how it ended
    lines = [line.split("\t") for line in out.splitlines()]
    assert all(len(cells) == len(HEADERS) for cells in lines), out
    assert {cells[0]: cells[2] for cells in lines} == {i: "cancelled" for i in ids}
    again = imagehub("queue", "cancel", ids[0], env=remote)
    assert again.returncode == 1 and again.stderr.startswith("error: 409 invalid_state:")
    assert imagehub("queue", "ls", env=remote).stdout.count(ids[0]) == 0


def test_a_data_dir_whose_workers_a_server_runs_is_left_to_that_server(
        server: ServerProcess, api: httpx.Client) -> None:
    local = {k: v for k, v in os.environ.items() if k not in ("IMAGEHUB_URL", "IMAGEHUB_API_KEY")}
    local.update(IMAGEHUB_DATA_DIR=str(server.data_dir), HF_HUB_OFFLINE="1", COLUMNS="200")
    body = {"model": "tiny-sd-slow", "prompt": "long ones", "num_inference_steps": 150,
            "num_generations": 4}  # seconds of work each, one after another
    jobs = [g["generation_id"] for g in api.post("/api/ai/queue", json=body).json()["generations"]]
    wait_for_status(api, jobs[0], {"processing"})
    try:
        listed = imagehub("models", env=local)  # read-only, in-process: no crash recovery
        generate = imagehub("generate", "x", "-m", "tiny-sd", "-o", "/tmp/unused", env=local)
        second = imagehub("serve", env=local | {"IMAGEHUB_PORT": "1"})
        rows = [server.stored_row(job) for job in jobs]
    finally:
        for job in jobs:
            api.delete(f"/api/ai/queue/{job}")

    assert listed.returncode == 0 and "tiny-sd" in listed.stdout
    for refused in (generate, second):
        assert refused.returncode == 1
        assert f"pid {server.proc.pid}" in refused.stderr  # type: ignore[union-attr]
        assert "runs the workers of" in refused.stderr and "IMAGEHUB_URL" in refused.stderr
    # still running when the last command ended, and never taken back from the server's worker
    # (a recovery would have put the running job back in the queue and claimed it again)
    assert "processing" in [row["status"] for row in rows]
    assert max(row["attempts"] for row in rows) == 1


def test_a_bad_out_folder_is_refused_before_anything_is_queued(
        remote: dict[str, str], tmp_path: Path, api: httpx.Client) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("")
    before = api.get("/api/ai/generations").json()["total_entries"]
    for out, reason in ((a_file, "exists and is not a folder"),
                        (Path("/proc/x"), "cannot create the folder: No such file or directory")):
        done = imagehub("generate", "x", "-m", "tiny-sd", "-o", str(out), env=remote)
        assert done.returncode == 1
        assert done.stderr == f"error: -o/--out {out}: {reason}\n"
    assert api.get("/api/ai/generations").json()["total_entries"] == before


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "prompt=y"], "-p prompt: give it with the PROMPT argument, not -p"),
    (["-p", "model=tiny-sd"], "-p model: give it with -m/--model, not -p"),
    (["-p", "num_generations=2"], "-p num_generations: give it with -n, not -p"),
    (["-p", "idempotency_key=abc"], "-p idempotency_key: give it with --idempotency-key, not -p"),
    (["--seed", "3", "-p", "seed=4"], "-p seed: also given as --seed; give it once"),
])
def test_p_may_not_set_what_an_argument_or_option_sets(remote: dict[str, str], args: list[str],
                                                      message: str) -> None:
    done = imagehub("generate", "x", "-m", "tiny-sd", *args, env=remote)
    assert done.returncode == 2 and done.stderr == f"error: {message}\n"


def test_generate_edits_an_image_file(remote: dict[str, str], tmp_path: Path, api: httpx.Client) -> None:
    """-i/--image sends the file as input_image: with strength 0, the saved image is the input."""
    source = Image.new("RGB", (512, 512), (200, 40, 40))
    source.paste((20, 20, 220), (0, 0, 256, 512))
    source.save(tmp_path / "in.jpg", quality=95)
    done = imagehub("generate", "keep it", "-m", "tiny-sd", "-i", str(tmp_path / "in.jpg"),
                    "-p", "strength=0", "--seed", "3", "-o", str(tmp_path / "out"), env=remote)
    assert done.returncode == 0, done.stderr
    (png,) = (tmp_path / "out").glob("*.png")
    out = np.asarray(Image.open(png).convert("RGB"), np.int16)
    expected = np.asarray(Image.open(tmp_path / "in.jpg").convert("RGB"), np.int16)
    assert out.shape == expected.shape and np.abs(out - expected).max() <= 8
    row = api.get(f"/api/ai/queue/{png.stem}").json()
    assert row["input_image"].startswith("data:image/jpeg;base64,...(") and row["strength"] == 0


def test_a_bad_image_is_refused_before_anything_is_queued(remote: dict[str, str], tmp_path: Path,
                                                          api: httpx.Client) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    before = api.get("/api/ai/generations").json()["total_entries"]
    for args, message in [
        (["-i", str(tmp_path / "missing.png")],
         f"-i/--image {tmp_path / 'missing.png'}: cannot read it: No such file or directory"),
        (["-i", str(tmp_path / "notes.txt")],
         (f"-i/--image: {str(tmp_path / 'notes.txt')!r} is not a readable image "
          "(not a PNG/JPEG/WebP/GIF/BMP file)")),
        (["-i", "https://example.com/a.png", "-p", "input_image=x"],
         "-p input_image: also given as -i/--image; give it once"),
    ]:
        done = imagehub("generate", "x", "-m", "tiny-sd", *args, env=remote)
        assert done.returncode == 2 and done.stderr == f"error: {message}\n", done.stderr
    assert api.get("/api/ai/generations").json()["total_entries"] == before


def test_queue_cancel_tries_every_id_and_takes_prefixes(remote: dict[str, str],
                                                        api: httpx.Client) -> None:
    body = {"model": "tiny-sd-slow", "prompt": "cancel me", "num_generations": 3,
            "num_inference_steps": 150}
    ids = [g["generation_id"] for g in api.post("/api/ai/queue", json=body).json()["generations"]]
    unknown = "00000000-0000-0000-0000-000000000000"
    done = imagehub("queue", "cancel", unknown, ids[0][:8] + "…", "zzzz", ids[1],
                    ids[2][:13] + "...", env=remote)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [f"cancelled {i}" for i in ids]
    assert done.stderr.splitlines() == [
        f"error: 404 resource_not_found: Generation not found: {unknown}",
        "error: 'zzzz': no queued or processing generation's id starts with it"]
    assert all(wait_for_status(api, i, {"cancelled"}) for i in ids)


def test_ids_are_never_cut(remote: dict[str, str], server: ServerProcess, api: httpx.Client) -> None:
    body = {"model": "tiny-sd-slow", "prompt": "a\tlisted\nprompt", "num_inference_steps": 150}
    (row,) = api.post("/api/ai/queue", json=body).json()["generations"]
    gen_id = row["generation_id"]
    try:
        piped = imagehub("queue", "ls", env=remote | {"COLUMNS": "40"})
        narrow = imagehub("queue", "ls", env=remote | {"COLUMNS": "60", "TTY_COMPATIBLE": "1"})
        wide = imagehub("queue", "ls", env=remote | {"COLUMNS": "120", "TTY_COMPATIBLE": "1"})
    finally:
        api.delete(f"/api/ai/queue/{gen_id}")
    for listed in (piped, narrow):  # one tab-separated line per row, in the columns' order
        assert listed.returncode == 0, listed.stderr
        (line,) = [line for line in listed.stdout.splitlines() if gen_id in line]
        assert line.split("\t")[0] == gen_id and line.split("\t")[4] == "a listed prompt"
    assert "│ " + gen_id + " │" in wide.stdout
    keys = imagehub("keys", "list", env=server.env | {"COLUMNS": "40"})
    assert keys.returncode == 0, keys.stderr
    (line,) = [line for line in keys.stdout.splitlines() if line.split("\t")[2] == "tests"]
    key_id, prefix = line.split("\t")[:2]
    assert len(key_id) == 36 and prefix == server.key[:10] + "..."
    created = line.split("\t")[5]  # the last column: UTC, to the second
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), line
    assert abs(datetime.fromisoformat(created).timestamp() - time.time()) < 3600
    wide = imagehub("keys", "list", env=server.env | {"COLUMNS": "200", "TTY_COMPATIBLE": "1"})
    assert "created" in wide.stdout and created in wide.stdout, wide.stdout


def test_version() -> None:
    from imagehub import __version__

    done = imagehub("--version", env=dict(os.environ))
    assert done.returncode == 0 and done.stdout == f"imagehub {__version__}\n", done


def test_keys_revoke_takes_the_listed_prefix_and_never_echoes_a_secret(server: ServerProcess) -> None:
    env = server.env | {"COLUMNS": "40"}
    first = server.cli("keys", "create", "--name", "by-prefix").stdout.strip()
    (line,) = [line for line in imagehub("keys", "list", env=env).stdout.splitlines()
               if "by-prefix" in line]
    shown = line.split("\t")[1]
    by_prefix = imagehub("keys", "revoke", shown, env=env)
    assert by_prefix.returncode == 0 and by_prefix.stdout == f"revoked {first[:10]}...\n"
    twice = imagehub("keys", "revoke", shown, env=env)
    assert twice.returncode == 0 and twice.stdout == f"{first[:10]}... was revoked already\n"
    second = server.cli("keys", "create", "--name", "by-secret").stdout.strip()
    by_secret = imagehub("keys", "revoke", second, env=env)
    assert by_secret.returncode == 0 and by_secret.stdout == f"revoked {second[:10]}...\n"
    for key in (first, second):
        answer = httpx.get(f"{server.url}/api/ai/models", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 401
    unknown = "ih_" + "A" * 43
    missing = imagehub("keys", "revoke", unknown, env=env)
    assert missing.returncode == 1 and missing.stderr == "error: API key not found: ih_AAAAAAA...\n"
    # by the secret as by the prefix: a second revoke says so, and succeeds
    again = imagehub("keys", "revoke", second, env=env)
    assert again.returncode == 0 and again.stdout == f"{second[:10]}... was revoked already\n"
    assert second not in again.stderr + again.stdout


def test_keys_create_refuses_what_is_not_a_namespace(server: ServerProcess) -> None:
    rule = "(letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128)"
    for option, namespace in [("--namespace", ""), ("--namespace", "  "),
                              ("--namespace", "bad ns/../x"), ("--member-of", "-team")]:
        done = imagehub("keys", "create", option, namespace, env=server.env)
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr == f"error: {option}: {namespace!r} is not a namespace {rule}\n"
    made = imagehub("keys", "create", "--namespace", "my-team.v2", "--member-of", "ox", env=server.env)
    assert made.returncode == 0 and made.stdout.startswith("ih_")


def test_serve_refuses_ports_and_workers_out_of_range(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEHUB_")}
    env.update(IMAGEHUB_DATA_DIR=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    for args, option in ((["--port", "99999"], "--port"), (["--port", "0"], "--port"),
                         (["--workers", "0"], "--workers")):
        done = imagehub("serve", *args, env=env, timeout=60)
        assert done.returncode == 2 and option in done.stderr
    for name, value, bound in (("IMAGEHUB_PORT", "99999", "65535"),
                               ("IMAGEHUB_WORKER_CONCURRENCY", "0", "1")):
        done = imagehub("serve", env=env | {name: value}, timeout=60)
        assert done.returncode == 1
        assert done.stderr.startswith(f"error: {name}='{value}': ") and bound in done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_eval_builtin_says_what_is_wrong_with_its_options() -> None:
    bad_resolution = imagehub("eval", "builtin", "--resolution", "8K", env=dict(os.environ))
    assert bad_resolution.returncode == 1
    assert bad_resolution.stderr == "error: --resolution '8K': expected one of 512, 1K, 2K, 4K\n"
    no_weights = imagehub("eval", "builtin", "--weights", "/nonexistent", env=dict(os.environ))
    assert no_weights.returncode == 1
    assert no_weights.stderr.startswith("error: --weights /nonexistent: imagehub-tiny weights "
                                        "missing: /nonexistent/")
    assert len(no_weights.stderr.splitlines()) == 1


def test_queue_watch_of_an_ended_generation_prints_its_row(remote: dict[str, str],
                                                           api: httpx.Client) -> None:
    (row,) = api.post("/api/ai/queue", json={"model": "tiny-sd", "prompt": "ended"}).json()[
        "generations"]
    wait_for_status(api, row["generation_id"], {"succeeded"})
    done = imagehub("queue", "watch", row["generation_id"], env=remote, timeout=60)
    assert done.returncode == 0, done.stderr
    assert row["generation_id"] in done.stdout and "succeeded" in done.stdout
    assert done.stdout.endswith("\n")


def test_queue_watch_on_a_narrow_terminal_keeps_each_row_on_one_line(
        remote: dict[str, str], api: httpx.Client) -> None:
    (row,) = api.post("/api/ai/queue", json={"model": "tiny-sd-slow", "prompt": "long " * 40,
                                             "num_inference_steps": 150}).json()["generations"]
    api.delete(f"/api/ai/queue/{row['generation_id']}")
    for columns, prompt in (("80", False), ("120", True)):
        done = imagehub("queue", "watch", row["generation_id"], env=remote | {
            "COLUMNS": columns, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0"}, timeout=60)
        assert done.returncode == 0, done.stderr
        lines = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout).splitlines()  # the bold of the header
        assert max(len(line) for line in lines) <= int(columns), done.stdout
        (shown,) = [line for line in lines if row["generation_id"] in line]  # one line
        assert "cancelled" in shown  # the status whole
        assert ("long long" in shown and "…" in shown) is prompt  # the prompt cut, or left out


def test_queue_watch_fills_in_rows_it_learns_of_from_events(server: ServerProcess) -> None:
    with RemoteTarget(server.url, api_key=server.key) as target:
        watch = _Watch(target, [])
        events = target.events()
        watch.apply(next(events))  # the stream is open: what follows comes as events
        (gen_id,) = target.enqueue("tiny-sd", "a watched square")
        for event in events:
            watch.apply(event)
            if watch.rows.get(gen_id, {}).get("status") == "succeeded":
                break
        events.close()  # type: ignore[attr-defined]
    cells = dict(zip(HEADERS, _cells(watch.rows[gen_id])))
    assert cells["prompt"] == "a watched square" and cells["enqueued"] and cells["model"] == "tiny-sd"
