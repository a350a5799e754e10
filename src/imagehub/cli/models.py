"""``imagehub models`` and ``imagehub models show ID``: the catalog, and one model's schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from imagehub.cli.console import make_console
from imagehub.cli.tables import print_rows
from imagehub.cli.target import KEY_OPTION, URL_OPTION, fail, one_line_errors, open_target
from imagehub.errors import ConfigError, ImagehubError, InvalidParams

if TYPE_CHECKING:
    from imagehub.config import Settings

models_app = typer.Typer(help="List models; show one model's fields; find and add local ones.",
                         invoke_without_command=True)
console = make_console()


@models_app.callback()
def list_models(ctx: typer.Context, url: str | None = URL_OPTION,
                api_key: str | None = KEY_OPTION) -> None:
    """Every model: id, name, backend, whether it can serve here, description (ids whole)."""
    if ctx.invoked_subcommand is not None:
        return
    with one_line_errors(), open_target(url, api_key) as target:
        models = target.models()
    rows = [(model["id"], model["display_name"], model.get("backend", ""),
             "yes" if model["available"] else f"no: {model.get('unavailable_reason')}",
             model.get("description", "")) for model in models]
    print_rows(console, ("id", "name", "backend", "available", "description"), rows)


@models_app.command("show")
def show(model_id: str = typer.Argument(..., metavar="ID"), url: str | None = URL_OPTION,
         api_key: str | None = KEY_OPTION) -> None:
    """One model, its request_schema as a table (basic fields first)."""
    with one_line_errors(), open_target(url, api_key) as target:
        model = target.model(model_id)
    schema = model["request_schema"]
    console.print(f"[bold]{model['display_name']}[/bold] ({model['id']}) · backend "
                  f"{model.get('backend', '?')}" + ("" if model["available"] else
                                                     f" · unavailable: {model['unavailable_reason']}"))
    if model.get("description"):
        console.print(model["description"])
    table = Table("field", "type", "default", "values", "description", title="request_schema")
    for name, spec in schema_rows(schema):
        required = name in schema.get("required", [])
        table.add_row(name + (" *" if required else ""), str(spec.get("type", "")),
                      json.dumps(spec["default"]) if "default" in spec else "", _values(spec),
                      spec.get("description", ""))
    console.print(table)
    console.print("* required. Basic fields first, then the rest by x-order.")


@models_app.command("scan")
def scan(folders: list[Path] = typer.Argument(None, metavar="[FOLDER]...",
                                             help="Also look here: pipeline folders, or folders "
                                                  "of them.")) -> None:
    """The diffusers pipelines on this machine (the Hugging Face cache, and FOLDERs), and which
    are in the catalog file already; nothing is downloaded."""
    from imagehub.catalog.discover import catalog_sources
    from imagehub.catalog.discover import scan as find
    from imagehub.config import load_settings

    for folder in folders or []:
        if not folder.is_dir():
            fail(f"{folder}: not a folder", code=2)
    settings = load_settings()
    _keep_signatures(settings)
    catalog = settings.resolved_catalog_path
    with one_line_errors():
        try:
            found, listed = find(folders=folders), catalog_sources(catalog)
        except OSError as exc:
            fail(f"{exc.filename or 'scan'}: {exc.strerror or exc}")
        except ConfigError as exc:  # the catalog file is not TOML
            fail(str(exc))
    table = Table("family", "weights", "servable", "in the catalog")
    table.add_column("source", overflow="fold")  # whole, to copy: folded, never cut
    table.add_column("pipeline", overflow="fold")
    for item in found:
        table.add_row(item.family, "yes" if item.has_weights else "no",
                      "no" if item.problem else "yes",
                      f"as {listed[item.source]}" if item.source in listed else "no",
                      item.source, item.pipeline)
    console.print(table)
    for item in found:
        if item.problem:
            console.print(f"not servable: {item.source}: {item.problem}", markup=False,
                          soft_wrap=True)
    console.print(f"{len(found)} found. Add one: imagehub models add SOURCE [--id ID] "
                  f"(writes {catalog})")


@models_app.command("add")
def add(source: str = typer.Argument(..., help="A diffusers folder, or hf:org/name from the "
                                               "Hugging Face cache."),
        model_id: str | None = typer.Option(None, "--id", help="The model id (default: from the "
                                                               "source's name)."),
        name: str | None = typer.Option(None, "--name", help="Display name (default: the id)."),
        settings_given: list[str] = typer.Option(
            [], "--set", metavar="KEY=VALUE",
            help="A card option, repeatable: device=cuda, dtype=bf16, compile=regional, "
                 "cuda_graphs=true, warmup_batches=[1,8,16], defaults={num_inference_steps=2} "
                 "(docs/gpu-serving.md lists them)")) -> None:
    """Add a local diffusers pipeline to this machine's catalog file, checked as the server
    checks it; a running server takes it in without a restart."""
    from imagehub.catalog.catalog import bind, read_toml
    from imagehub.catalog.discover import add as add_entry
    from imagehub.catalog.discover import parse_setting
    from imagehub.config import load_settings

    settings = load_settings()
    _keep_signatures(settings)
    catalog = settings.resolved_catalog_path
    with one_line_errors():
        try:
            options = dict(parse_setting(text) for text in settings_given)
            check = _settings_check(catalog, settings) if options else None
            model_id, found = add_entry(catalog, source, model_id, name, options, check)
        except InvalidParams as exc:
            fail(exc.detail, code=2)
        except ImagehubError as exc:
            fail(f"{source}: {exc.detail}")
        except ConfigError as exc:  # the catalog file is not TOML: left as it is
            fail(str(exc))
        card = next(c for c in read_toml(catalog) if c.id == model_id)
        entry = bind(card, settings)
    state = "available" if entry.available else f"unavailable: {entry.unavailable_reason}"
    console.print(f"added {model_id} ({found.pipeline}, {found.family}) to {catalog}: {state}. "
                  "A running server on this file serves it from its next request for it.",
                  markup=False)


def _settings_check(catalog: Path, settings: Settings) -> Callable[[str, str], None]:
    """What ``models add --set`` runs on the new file before writing it: the entry bound as the
    server binds it; InvalidParams naming ``--set`` when the entry would be unavailable (an
    unknown key, a wrong type, a device this machine lacks), and nothing is written. (Without
    ``--set`` an entry ``add`` accepts is one the server can bind.)"""
    from imagehub.catalog.catalog import bind, read_toml

    def check(text: str, model_id: str) -> None:
        card = next(c for c in read_toml(catalog, text) if c.id == model_id)
        reason = bind(card, settings).unavailable_reason
        if reason is not None:
            raise InvalidParams(f"--set: {reason}; nothing was written")

    return check


def schema_rows(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Properties in form order: ``basic`` fields first, each group by ``x-order``."""
    basic = set(schema.get("basic", []))
    return sorted(schema.get("properties", {}).items(),
                  key=lambda kv: (kv[0] not in basic, kv[1].get("x-order", 99), kv[0]))


def _values(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return ", ".join(map(str, spec["enum"]))
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None or high is not None:
        return f"{'' if low is None else low}..{'' if high is None else high}"
    return ""


def _keep_signatures(settings: Settings) -> None:
    """What pipeline classes take is read from the cache, as the server reads it."""
    from imagehub.engines.diffusers import loading

    loading.SIGNATURE_CACHE = settings.cache_dir
