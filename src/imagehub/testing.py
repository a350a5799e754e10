"""Helpers for tests and benchmarks: a real ``imagehub serve`` subprocess on loopback, and a
catalog file over a local diffusers folder (vLLM's ``RemoteOpenAIServer`` habit)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

TINY_MODEL = "tiny-sd"


def write_catalog(data_dir: Path, model_dir: Path, steps: int = 2, **models: int) -> Path:
    """A models.toml with ``tiny-sd`` (and any ``name=steps`` extra cards) over ``model_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cards = {TINY_MODEL: steps, **models}
    text = "".join(
        f'[models.{name}]\nbackend = "diffusers"\nsource = "{model_dir}"\ndevice = "cpu"\n'
        f'display_name = "Tiny SD ({n} steps)"\n[models.{name}.defaults]\nnum_inference_steps = {n}\n'
        f'resolution = "512"\n\n'
        for name, n in cards.items()
    )
    path = data_dir / "models.toml"
    path.write_text(text)
    return path


def child_pids(parent: int, command_contains: bytes = b"") -> list[int]:
    """Pids of ``parent``'s live children whose command line holds ``command_contains``
    (``b"spawn_main"``: the models' own processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and command_contains in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``imagehub serve`` in a subprocess, with its own data dir and one API key."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "IMAGEHUB_DATA_DIR": str(data_dir), "IMAGEHUB_PORT": str(self.port),
                    "HF_HUB_OFFLINE": "1", **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = self.cli("keys", "create", "--name", "tests").stdout.strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagehub", *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=120)

    def start(self, timeout: float = 90.0) -> ServerProcess:
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "imagehub", "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.data_dir / 'server.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def kill(self) -> None:
        """``kill -9``: no shutdown handler runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def stored_row(self, generation_id: str) -> dict[str, object]:
        """The generation's row as the server stored it (JSON columns decoded), read from its
        SQLite file: what reproduces it, attempts, provenance."""
        with sqlite3.connect(self.data_dir / "imagehub.db") as db:
            db.row_factory = sqlite3.Row
            query = "SELECT * FROM generations WHERE id = ?"
            row = dict(db.execute(query, (generation_id,)).fetchone())
        for column in ("params", "resolved", "provenance", "images"):
            row[column] = json.loads(row[column])
        return row

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120,
                            headers={"Authorization": f"Bearer {key or self.key}"})
