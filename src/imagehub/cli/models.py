"""``imagehub models`` and ``imagehub models show ID``: the catalog, and one model's schema."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from imagehub.cli.target import KEY_OPTION, URL_OPTION, one_line_errors, open_target

models_app = typer.Typer(help="List models; show one model's fields.", invoke_without_command=True)
console = Console()


@models_app.callback()
def list_models(ctx: typer.Context, url: str | None = URL_OPTION,
                api_key: str | None = KEY_OPTION) -> None:
    """Every model: id, name, backend, whether it can serve here."""
    if ctx.invoked_subcommand is not None:
        return
    with one_line_errors(), open_target(url, api_key) as target:
        models = target.models()
    table = Table("id", "name", "backend", "available", "description")
    for model in models:
        available = "yes" if model["available"] else f"no: {model.get('unavailable_reason')}"
        table.add_row(model["id"], model["display_name"], model.get("backend", ""), available,
                      model.get("description", ""))
    console.print(table)


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
