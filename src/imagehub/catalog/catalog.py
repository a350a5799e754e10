"""The catalog: built-in cards plus the user's TOML file, each bound to its engine and schema.

The TOML file (``IMAGEHUB_CATALOG_PATH``, default ``<data_dir>/models.toml``)::

    [models.sd-turbo]
    backend = "diffusers"
    source = "/models/sd-turbo"          # a diffusers folder, or "hf:stabilityai/sd-turbo"
    display_name = "SD Turbo"
    device = "cuda"                      # optional: cuda | mps | cpu
    dtype = "bf16"                       # optional: bf16 | fp16 | fp32
    [models.sd-turbo.defaults]
    num_inference_steps = 1
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagehub.catalog.cards import BUILTIN_CARDS, ModelCard
from imagehub.catalog.schema import RequestSchema
from imagehub.config import Settings
from imagehub.engines.base import Engine
from imagehub.engines.registry import create_engine, is_remote
from imagehub.errors import ConfigError, InvalidParams, ModelUnavailable, NotFound, clip

log = logging.getLogger(__name__)

_CARD_TYPES: dict[str, tuple[type, str]] = {
    "backend": (str, "a string"), "display_name": (str, "a string"),
    "description": (str, "a string"), "developer": (str, "a string"),
    "inputs": (list, "a list of strings"), "defaults": (dict, "a table"),
    "created": (int, "a whole number (Unix seconds)"),
}
"""The card's own keys and their TOML types; every other key of an entry goes to its engine."""
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ModelEntry:
    """A card bound to its engine (built, not loaded) and its request schema."""

    card: ModelCard
    schema: RequestSchema
    engine: Engine | None
    unavailable_reason: str | None
    _loaded: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def fields_known(self) -> bool:
        """Whether ``schema`` is the model's whole one: it can serve, or its card fixes its fields
        (a remote model without its provider's key). A local model whose files are missing
        publishes only size and seed."""
        return self.available or self.card.properties is not None

    def ready_engine(self) -> Engine:
        """The engine, loaded; ModelUnavailable (503) when it cannot serve."""
        if self.engine is None or self.unavailable_reason:
            raise ModelUnavailable(str(self.unavailable_reason))
        with self._lock:
            if not self._loaded:
                self.engine.load()
                self._loaded = True
        return self.engine


class Catalog:
    """Model id → ``ModelEntry``.

    Loaded from ``settings``, it also takes in entries added to the user's file while it runs
    (``imagehub models add`` beside a running server): when the file has changed, a listing or a
    request for an id it does not know reads it again and binds the new ids. An entry changed or
    removed there is logged and left as it is until a restart: its engine may be loaded and busy.
    """

    def __init__(self, entries: list[ModelEntry], settings: Settings | None = None) -> None:
        self._entries = {entry.id: entry for entry in entries}
        self._settings = settings
        self._seen = _stamp(settings.resolved_catalog_path) if settings else None
        self._refresh_lock = threading.Lock()
        self._remote = self._remote_of(self._entries.values())

    @classmethod
    def load(cls, settings: Settings) -> "Catalog":
        """The built-in cards and the user's, bound; each user card that cannot serve is logged
        with its reason (and stays listed, unavailable, with the same reason)."""
        cards = {card.id: card for card in BUILTIN_CARDS}
        for card in read_toml(settings.resolved_catalog_path):
            if card.id in cards:
                log.warning("%s replaces the built-in model %s", card.origin, card.id)
            cards[card.id] = card
        catalog = cls([bind(card, settings) for card in cards.values()], settings)
        for entry in catalog.all():
            if entry.card.origin != "built-in" and not entry.available:
                log.warning("model %s cannot be served: %s", entry.id, entry.unavailable_reason)
        return catalog

    def get(self, model_id: str) -> ModelEntry:
        entry = self._entries.get(model_id)
        if entry is None and self._refresh():
            entry = self._entries.get(model_id)
        if entry is None:
            raise NotFound(f"Model not found: {clip(str(model_id), 200)}")
        return entry

    def all(self) -> list[ModelEntry]:
        self._refresh()
        return list(self._entries.values())

    def remote_ids(self) -> frozenset[str]:
        """The ids of the models that providers serve here (``engines.registry.is_remote``, and
        available: their keys are set), as the last listing or look-up found them: read on every
        claim of a job, so the file is not looked at."""
        return self._remote

    @staticmethod
    def _remote_of(entries: Any) -> frozenset[str]:
        return frozenset(e.id for e in entries if is_remote(e.card.backend) and e.available)

    def _refresh(self) -> bool:
        """Bind the ids added to the user's file since it was last read; whether any were."""
        if self._settings is None:
            return False
        path = self._settings.resolved_catalog_path
        with self._refresh_lock:
            stamp = _stamp(path)
            if stamp == self._seen:
                return False
            self._seen = stamp
            try:
                cards = read_toml(path)
            except (ConfigError, OSError, UnicodeDecodeError) as exc:  # a hand edit, half saved
                log.warning("%s; the models it lists stay as they were", exc)
                return False
            added = False
            for card in cards:
                known = self._entries.get(card.id)
                if known is None:
                    entry = bind(card, self._settings)
                    self._entries[card.id] = entry
                    added = True
                    log.info("model %s added from %s%s", card.id, card.origin, "" if entry.available
                             else f"; it cannot be served: {entry.unavailable_reason}")
                elif known.card != card:
                    log.warning("%s changed; the change is read when the server restarts",
                                card.origin)
            for model_id in {e.id for e in self._entries.values() if e.card.origin != "built-in"} \
                    - {card.id for card in cards}:
                log.warning("model %s is no longer in %s; it stays until the server restarts",
                            model_id, path.name)
            if added:
                self._remote = self._remote_of(self._entries.values())
            return added


def _stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time and size (None when it is missing): what says it changed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def read_toml(path: Path, text: str | None = None) -> list[ModelCard]:
    """The user's cards; a missing file means none. ConfigError naming the file when it is not
    TOML or has no ``[models.<id>]`` tables where they belong; an entry with a problem of its own
    is a card unavailable for that reason. ``text``: the file's content to read, not yet
    written."""
    if text is None and not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text() if text is None else text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for name in sorted(set(data) - {"models"}):
        log.warning("%s: [%s] is not read (models go in [models.<id>] tables)", path, name)
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: models must be tables ([models.<id>]), not {models!r}")
    return [_card(f"{path.name} [models.{model_id}]", model_id, table)
            for model_id, table in models.items()]


def _card(origin: str, model_id: str, table: Any) -> ModelCard:
    problem = _card_problem(model_id, table)
    if problem is not None:
        return ModelCard(id=model_id, backend="diffusers", display_name=model_id, origin=origin,
                         unavailable_reason=f"{origin} {problem}")
    table = dict(table)
    known = {k: table.pop(k) for k in list(table) if k in _CARD_TYPES}
    return ModelCard(id=model_id, backend=known.pop("backend", "diffusers"),
                     display_name=known.pop("display_name", model_id), options=table,
                     origin=origin, **known)


def _card_problem(model_id: str, table: Any) -> str | None:
    if not _MODEL_ID.match(model_id):
        return "id: not a model id (letters, digits, '.', '_' and '-', up to 128)"
    if not isinstance(table, dict):
        return f"must be a table, not {table!r}"
    for key, (kind, words) in _CARD_TYPES.items():
        value = table.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{key}: {value!r} must be {words}"
    if not all(isinstance(i, str) for i in table.get("inputs", [])):
        return f"inputs: {table['inputs']!r} must be {_CARD_TYPES['inputs'][1]}"
    return None


def bind(card: ModelCard, settings: Settings) -> ModelEntry:
    """Build the card's engine and schema; a card that cannot be built is listed unavailable."""
    engine: Engine | None = None
    reason = card.unavailable_reason
    properties: dict[str, Any] = card.properties or {}
    if reason is None:
        try:
            engine = create_engine(card.backend, card.options, settings)
            properties = card.properties or engine.schema_properties()
            reason = _defaults_problem(card, properties) or _from(card, engine.availability())
        except Exception as exc:  # a broken card must not take the server down
            engine, reason = None, f"{card.origin} {exc}"
    defaults = card.defaults if reason is None else {}  # a broken card publishes none of its own
    return ModelEntry(card=card, schema=RequestSchema.build(properties, defaults),
                      engine=engine, unavailable_reason=reason)


def _from(card: ModelCard, reason: str | None) -> str | None:
    """An engine's reason, saying which entry of the user's file it is about."""
    return f"{card.origin} {reason}" if reason and card.origin != "built-in" else reason


def _defaults_problem(card: ModelCard, properties: dict[str, Any]) -> str | None:
    """Why the card's ``defaults`` do not fit the model's fields (an unknown field, a wrong
    type), or None: a default is what every request without that field sends."""
    if not card.defaults:
        return None
    try:
        RequestSchema.build(properties).validate({"prompt": "-", **card.defaults})
    except InvalidParams as exc:
        return f"{card.origin} defaults: {exc.detail}"
    return None
