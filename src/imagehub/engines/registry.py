"""Backend name → engine class, imported lazily (torch only loads when a model needs it)."""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from imagehub.config import Settings
from imagehub.engines.base import Engine

REMOTE_BACKENDS = ("remote", "gemini", "fal", "oxen", "openai")
"""A remote card's backend names its first provider; ``remote`` takes ``providers`` only."""

BACKENDS: dict[str, str] = {
    "builtin": "imagehub.engines.builtin:BuiltinEngine",
    "diffusers": "imagehub.engines.diffusers:DiffusersEngine",
    **{name: "imagehub.engines.remote:RemoteEngine" for name in REMOTE_BACKENDS},
}


def is_remote(backend: str) -> bool:
    """Whether a card of ``backend`` is served by a provider over the network (it waits, it does
    not compute: its work runs in workers apart from the local models')."""
    return backend in REMOTE_BACKENDS


def create_engine(backend: str, options: dict[str, Any], settings: Settings) -> Engine:
    """Build (not load) the engine of ``backend`` with the card's options."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {sorted(BACKENDS)}")
    module_name, _, class_name = BACKENDS[backend].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(options)
    if backend == "diffusers":
        from imagehub.engines.diffusers import loading

        loading.SIGNATURE_CACHE = settings.cache_dir
        if "source" not in kwargs:
            raise ValueError("source: missing (a diffusers folder, or hf:<org>/<name>)")
        source = kwargs.pop("source")
        check_options(cls, kwargs)
        kwargs.setdefault("allow_downloads", settings.allow_hub_downloads)
        if kwargs.get("replicas", 1) == 1:  # a card asking for copies gets a process for each
            kwargs.setdefault("process", settings.engine_process)
        kwargs.setdefault("max_batch_size", settings.max_batch_size)
        return cls(source, **kwargs)
    if backend in REMOTE_BACKENDS:
        return cls(settings, **remote_options(backend, kwargs))
    check_options(cls, kwargs)
    return cls(**kwargs)


def check_options(cls: type, options: dict[str, Any]) -> None:
    """ValueError naming the first card key the engine does not take (and the keys it does), or
    a true/false key given anything else (TOML's ``"yes"`` is a string, and a true one)."""
    params = {name: p for name, p in inspect.signature(cls).parameters.items()
              if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "source"}
    for key, value in options.items():
        if key not in params:
            near = difflib.get_close_matches(key, params, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{key}: not a key of this backend{hint} (keys: {', '.join(params)})")
        kind = str(params[key].annotation)
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{key}: {value!r} must be true or false")
        if kind.startswith("list[") and not isinstance(value, list):
            raise ValueError(f"{key}: {value!r} must be a list ({kind})")


def remote_options(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """A remote card's options → RemoteEngine arguments.

    ``providers`` (default: the backend alone) in order; ``<provider>_model`` each one's model
    code; any other ``<provider>_<option>`` goes to that provider (``fal_edit_model``).
    """
    providers = list(options.pop("providers", None) or [backend])
    models = {p: options.pop(f"{p}_model", None) for p in providers}
    per_provider: dict[str, dict[str, Any]] = {p: {} for p in providers}
    for key in list(options):
        provider, _, name = key.partition("_")
        if provider in per_provider and name:
            per_provider[provider][name] = options.pop(key)
    if options:
        raise ValueError(f"unknown options for a remote model: {sorted(options)}")
    return {"providers": providers, "models": models, "backend": backend, "options": per_provider}
