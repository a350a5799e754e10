"""Finding local diffusers pipelines (the Hugging Face cache, folders) and adding one to the
user's catalog file: what ``imagehub models scan`` and ``imagehub models add`` do.

Nothing here downloads: a cached repo is read where huggingface_hub left it, and ``add`` resolves
its source as the server will (``local_files_only``). An entry is appended to the TOML file as
text, so the file's comments and layout stay as the user wrote them.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagehub.catalog.cards import BUILTIN_CARDS
from imagehub.catalog.catalog import _MODEL_ID, read_toml
from imagehub.engines.diffusers.loading import (
    HF_PREFIX, family_of, read_json, read_layout, resolve_source,
)
from imagehub.errors import InvalidParams, ModelUnavailable

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")


@dataclass(frozen=True)
class Found:
    """A diffusers pipeline on this machine."""

    source: str
    """What a card's ``source`` says: ``hf:org/name`` or a folder."""
    pipeline: str
    family: str
    has_weights: bool
    problem: str | None = None
    """Why the server could not serve it (a component folder missing, a pipeline imagehub cannot
    drive); None when it can."""


def scan(cache_dir: str | Path | None = None, folders: list[Path] | None = None) -> list[Found]:
    """The diffusers pipelines in the Hugging Face cache (``HF_HOME``'s, or ``cache_dir``), then
    in ``folders`` (each a pipeline folder, or a folder of them)."""
    found = [_found(f"{HF_PREFIX}{repo_id}", folder) for repo_id, folder in _cached(cache_dir)]
    for folder in folders or []:
        candidates = [folder] if (folder / "model_index.json").is_file() else sorted(folder.iterdir())
        found += [_found(str(c.resolve()), c) for c in candidates if (c / "model_index.json").is_file()]
    return found


def _cached(cache_dir: str | Path | None) -> list[tuple[str, Path]]:
    """(repo id, snapshot folder) of each cached model repo whose snapshot is a pipeline: the one
    ``main`` points at, else the newest."""
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        snapshots = [r for r in repo.revisions if (r.snapshot_path / "model_index.json").is_file()]
        if not snapshots:
            continue
        main = [r for r in snapshots if "main" in r.refs]
        best = main[0] if main else max(snapshots, key=lambda r: r.last_modified)
        out.append((repo.repo_id, best.snapshot_path))
    return out


def _found(source: str, folder: Path, *, strict: bool = False) -> Found:
    """What ``folder`` holds. A folder the server could not serve (``model_index.json``
    unreadable, a component folder missing, a pipeline imagehub cannot drive) raises
    ModelUnavailable when ``strict`` (``add``); otherwise it is listed with its problem (a scan
    says what is there)."""
    try:
        pipeline = str(read_json(folder / "model_index.json").get("_class_name", "?"))
    except ModelUnavailable:
        if strict:
            raise
        pipeline = "? (model_index.json unreadable)"
    has_weights = any(next(folder.glob(f"*/{pattern}"), None) for pattern in _WEIGHTS)
    try:
        read_layout(folder)
        problem = None if has_weights else "no weights in its component folders"
    except ModelUnavailable as exc:
        if strict:
            raise
        problem = exc.detail
    return Found(source=source, pipeline=pipeline, family=family_of(pipeline),
                 has_weights=has_weights, problem=problem)


def catalog_sources(catalog_path: Path) -> dict[str, str]:
    """The ``source`` of each entry of the user's catalog file → its id."""
    return {str(card.options["source"]): card.id for card in read_toml(catalog_path)
            if isinstance(card.options.get("source"), str)}


SET_BY_ADD = ("backend", "source", "display_name")
"""Keys ``add`` writes itself: ``--set`` may not give them."""


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``imagehub models add --set``) as a card key and its value: VALUE read as a
    TOML value (``true``, ``8``, ``[1, 8, 16]``, ``"text"``), else as the text it is
    (``compile=regional``). InvalidParams naming ``--set`` and the text when it is not one."""
    key, equals, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not equals or not _BARE_KEY.match(key) or not raw:
        raise InvalidParams(f"--set: {text!r} is not KEY=VALUE (e.g. compile=regional, "
                            "cuda_graphs=true, warmup_batches=[1,8,16])")
    if key in SET_BY_ADD:
        raise InvalidParams(f"--set: {key} is written by models add itself"
                            + ("; use --name" if key == "display_name" else ""))
    try:
        return key, tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return key, raw


def add(catalog_path: Path, source: str, model_id: str | None = None,
        display_name: str | None = None, options: dict[str, Any] | None = None,
        check: Callable[[str, str], None] | None = None) -> tuple[str, Found]:
    """Append a ``[models.<id>]`` entry for ``source`` to the catalog file (made if missing),
    with the card ``options`` given; the id and what the source holds. InvalidParams naming the
    option when the id is not one or is taken; ModelUnavailable when the source is not a
    diffusers folder here. ``check`` is given the new file's text and the id before the file is
    written, and raises to leave the file as it was."""
    if not source.startswith(HF_PREFIX):
        source = str(Path(source).expanduser().resolve())  # the server may run elsewhere
    folder = resolve_source(source)  # offline, as the server resolves it
    found = _found(source, folder, strict=True)  # unreadable: refused, not listed unavailable
    model_id = model_id or _id_from(source)
    _check_id(catalog_path, model_id)
    lines = [f"[models.{_key(model_id)}]", 'backend = "diffusers"', f"source = {_string(source)}",
             f"display_name = {_string(display_name or model_id)}"]
    lines += [f"{key} = {_value(value)}" for key, value in (options or {}).items()]
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    before = catalog_path.read_text() if catalog_path.exists() else ""
    gap = "" if not before else ("\n" if before.endswith("\n") else "\n\n")
    after = before + gap + "\n".join(lines) + "\n"
    tomllib.loads(after)  # the file stays TOML, or is left as it was
    if check is not None:
        check(after, model_id)
    _replace(catalog_path, after)
    return model_id, found


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` at once: a server reading the file meanwhile sees the old
    content or the new, never a half-written file."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(text)
    if path.exists():
        shutil.copymode(path, part)
    os.replace(part, path)


def _id_from(source: str) -> str:
    """``hf:org/SD-Turbo`` → ``sd-turbo``; a folder → its name, the same way."""
    name = source.removeprefix(HF_PREFIX).partition("@")[0].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:128] or "model"


def _check_id(catalog_path: Path, model_id: str) -> None:
    if not _MODEL_ID.match(model_id):
        raise InvalidParams(f"--id: {model_id!r} is not a model id (letters, digits, '.', '_' "
                            "and '-', up to 128, starting with a letter or digit)")
    taken = {card.id: card.origin for card in BUILTIN_CARDS}
    taken.update({card.id: card.origin for card in read_toml(catalog_path)})
    if model_id in taken:
        raise InvalidParams(f"--id: {model_id!r} is taken ({taken[model_id]}); choose another "
                            "with --id")


def _key(model_id: str) -> str:
    return model_id if _BARE_KEY.match(model_id) else _string(model_id)


def _value(value: Any) -> str:
    """A value read by ``parse_setting`` written back as TOML."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan: TOML's spelling is Python's
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return json.dumps(value)  # bool, int, float: TOML writes them as JSON does


def _string(text: str) -> str:
    """``text`` as a TOML basic string: JSON's escapes are TOML's, with the characters beyond
    ASCII as they are (TOML refuses the surrogate pairs JSON would write for them) and DEL
    escaped (TOML refuses it raw)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")

