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
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagehub.catalog.cards import BUILTIN_CARDS, ModelCard
from imagehub.catalog.schema import RequestSchema
from imagehub.config import Settings
from imagehub.engines.base import Engine
from imagehub.engines.registry import create_engine
from imagehub.errors import ModelUnavailable, NotFound, clip

log = logging.getLogger(__name__)

_CARD_KEYS = {"backend", "display_name", "description", "developer", "inputs", "defaults", "created"}


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
    """Model id → ``ModelEntry``."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self._entries = {entry.id: entry for entry in entries}

    @classmethod
    def load(cls, settings: Settings) -> "Catalog":
        cards = {card.id: card for card in BUILTIN_CARDS}
        cards.update({card.id: card for card in read_toml(settings.resolved_catalog_path)})
        return cls([bind(card, settings) for card in cards.values()])

    def get(self, model_id: str) -> ModelEntry:
        entry = self._entries.get(model_id)
        if entry is None:
            raise NotFound(f"Model not found: {clip(str(model_id), 200)}")
        return entry

    def all(self) -> list[ModelEntry]:
        return list(self._entries.values())


def read_toml(path: Path) -> list[ModelCard]:
    """The user's cards; a missing file means none."""
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text())
    cards = []
    for model_id, table in data.get("models", {}).items():
        table = dict(table)
        known = {k: table.pop(k) for k in list(table) if k in _CARD_KEYS}
        cards.append(ModelCard(
            id=model_id, backend=known.pop("backend", "diffusers"),
            display_name=known.pop("display_name", model_id), options=table, **known,
        ))
    return cards


def bind(card: ModelCard, settings: Settings) -> ModelEntry:
    """Build the card's engine and schema; a card that cannot be built is listed unavailable."""
    engine: Engine | None = None
    reason = card.unavailable_reason
    properties: dict[str, Any] = card.properties or {}
    if reason is None:
        try:
            engine = create_engine(card.backend, card.options, settings)
            properties = card.properties or engine.schema_properties()
            reason = engine.availability()
        except Exception as exc:  # a broken card must not take the server down
            log.warning("model %s cannot be served: %s", card.id, exc)
            engine, reason = None, f"{type(exc).__name__}: {exc}"
    return ModelEntry(card=card, schema=RequestSchema.build(properties, card.defaults),
                      engine=engine, unavailable_reason=reason)
