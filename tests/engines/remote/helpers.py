"""Helpers for remote-engine tests: a built-in card bound to its engine, and one generation."""

from __future__ import annotations

from typing import Any

from imagehub.catalog.cards import BUILTIN_CARDS
from imagehub.catalog.catalog import ModelEntry, bind
from imagehub.config import Settings
from imagehub.engines.base import EngineResult, StepCallback, no_progress
from imagehub.services.requests import engine_request


def entry(model_id: str, settings: Settings) -> ModelEntry:
    """The built-in card ``model_id`` bound to its engine, as the catalog does it."""
    card = next(c for c in BUILTIN_CARDS if c.id == model_id)
    return bind(card, settings)


def run(model: ModelEntry, on_step: StepCallback = no_progress, n: int = 1, seed: int = 7,
        **params: Any) -> EngineResult:
    """Validate ``params`` with the model's schema, resolve them as the service does, generate."""
    body = {"prompt": "a red cube", **params}
    model.schema.validate(body)
    resolved = model.schema.with_defaults(body)
    resolved["seed"] = seed
    engine = model.ready_engine()
    return engine.generate(engine_request(resolved, n), on_step)

