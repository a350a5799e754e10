"""``imagehub serve`` as an operator runs it: a start that cannot work is one ``error:`` line
naming the setting and its value (no traceback, no banner); a start that works says so once it
listens, in one log format for imagehub's lines and uvicorn's."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import ServerProcess

from imagehub.cli.serve import HideFileTokens

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def _serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagehub", "serve"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "IMAGEHUB_DATA_DIR": str(data_dir), **env})


def _one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", (done.stdout, done.stderr)
    for word in words:
        assert word in errors[0], (word, errors[0])


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, IMAGEHUB_PORT=str(port))
    _one_error_line(done, f"IMAGEHUB_PORT={port}", f"127.0.0.1:{port} is in use")
    assert not (tmp_path / "imagehub.db").exists()  # refused before the database was touched


def test_a_database_url_that_cannot_work_is_one_line(tmp_path: Path) -> None:
    cases = {
        "not a url": ["IMAGEHUB_DATABASE_URL='not a url'", "not a SQLAlchemy URL"],
        "postgres://me:hunter2@db/hub": ["IMAGEHUB_DATABASE_URL='postgres://me:***@db/hub'",
                                         "no dialect or driver 'postgres'"],
        "postgresql+nodriver://me@db/hub": ["IMAGEHUB_DATABASE_URL='postgresql+nodriver://me@db/hub'",
                                            "no dialect or driver 'postgresql+nodriver'"],
        "mysql+mysqldb://me:hunter2@db:x/hub": ["IMAGEHUB_DATABASE_URL='mysql+mysqldb://me:***@db:x/hub'",
                                                "not a SQLAlchemy URL"],
    }
    for url, words in cases.items():
        done = _serve(tmp_path, IMAGEHUB_DATABASE_URL=url)
        _one_error_line(done, *words)
        assert "hunter2" not in done.stderr


def test_a_missing_database_driver_is_one_line(tmp_path: Path) -> None:
    """The dialect is SQLAlchemy's, its driver a package not installed here."""
    import importlib.util

    assert importlib.util.find_spec("pymssql") is None
    done = _serve(tmp_path, IMAGEHUB_DATABASE_URL="mssql+pymssql://me:hunter2@db/hub")
    _one_error_line(done, "IMAGEHUB_DATABASE_URL='mssql+pymssql://me:***@db/hub'",
                    "is not installed", "pymssql")
    assert "hunter2" not in done.stderr


def test_the_start_is_said_once_listening_in_imagehubs_format(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "on", {"IMAGEHUB_ACCESS_LOG": "true",
                                             "IMAGEHUB_SIGNING_SECRET": "s" * 16})
    quiet = ServerProcess(tmp_path / "quiet", {"IMAGEHUB_LOG_LEVEL": "warning"})
    try:
        server.start()
        quiet.start()
        for hub in (server, quiet):
            assert httpx.get(f"{hub.url}/api/files/secret-token/0.png").status_code in (403, 404)
    finally:
        server.stop()
        quiet.stop()
    lines = (server.data_dir / "server.log").read_text().splitlines()
    banner = [line for line in lines if "Authorization: Bearer <key>'." in line]
    assert banner and banner[0].startswith("API keys are required"), lines  # not cut at 80
    started = [line for line in lines if "imagehub.cli.serve: imagehub " in line]
    assert len(started) == 1 and LOG_LINE.match(started[0]), lines
    assert f"serving at {server.url} " in started[0] and str(server.data_dir) in started[0]
    assert f"database sqlite:///{server.data_dir}/imagehub.db" in started[0]
    assert lines.index(started[0]) < lines.index(banner[0])
    access = [line for line in lines if "uvicorn.access" in line]
    assert access and all(LOG_LINE.match(line) for line in access), access
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in access), access
    assert any("/api/files/<token>/0.png" in line for line in access), access
    assert "secret-token" not in "\n".join(lines) and "s" * 16 not in "\n".join(lines)
    quiet_log = (quiet.data_dir / "server.log").read_text()
    assert "imagehub serving at" in quiet_log  # the banner, on stdout
    assert "INFO" not in quiet_log and "uvicorn.access" not in quiet_log, quiet_log


def test_an_access_line_names_no_image_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/files/eyJh.Zz_1-x/3.png?x=1", "1.1", 200),
                               None)
    HideFileTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /api/files/<token>/3.png?x=1 HTTP/1.1" 200'
