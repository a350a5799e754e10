"""``/llms.txt`` and the Markdown pages it lists (static pages plus per-model pages)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from imagehub.api.deps import hub
from imagehub.catalog.catalog import ModelEntry
from imagehub.errors import NotFound, clip
from imagehub.services.hub import Hub

router = APIRouter(tags=["docs"])
MARKDOWN = "text/markdown; charset=utf-8"


def _static_pages() -> dict[str, str]:
    """page slug → first heading, for every Markdown file shipped in ``imagehub/docs``."""
    pages = {}
    for item in sorted(resources.files("imagehub.docs").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".md"):
            first = item.read_text().splitlines()[0].lstrip("# ").strip()
            pages[item.name[:-3]] = first
    return pages


@router.get("/llms.txt", response_class=PlainTextResponse)
def llms_txt(request: Request, h: Hub = Depends(hub)) -> PlainTextResponse:
    base = _base_url(request, h)
    lines = ["# imagehub", "",
             "> A self-hosted image-generation hub behind the Oxen.ai inference API.", "", "## Docs", ""]
    lines += [f"- [{title}]({base}/docs/{slug}.md)" for slug, title in _static_pages().items()]
    lines += ["", "## Models", ""]
    lines += [f"- [{e.card.display_name}]({base}/docs/models/{e.id}.md): {e.card.description}"
              for e in h.deps.catalog.all()]
    return PlainTextResponse("\n".join(lines) + "\n", media_type=MARKDOWN)


@router.get("/docs/models/{model_id}.md", response_class=PlainTextResponse)
def model_page(model_id: str, request: Request, h: Hub = Depends(hub)) -> PlainTextResponse:
    return PlainTextResponse(render_model_page(h.deps.catalog.get(model_id), _base_url(request, h)),
                             media_type=MARKDOWN)


def _base_url(request: Request, h: Hub) -> str:
    """``IMAGEHUB_PUBLIC_URL`` where set (as image links use it: a ``Host`` header then changes
    no link); else the URL the request came to."""
    return (h.settings.public_url or str(request.base_url)).rstrip("/")


@router.get("/docs/{slug}.md", response_class=PlainTextResponse)
def static_page(slug: str) -> PlainTextResponse:
    if slug not in _static_pages():
        raise NotFound(f"doc page not found: {clip(slug)}")
    return PlainTextResponse(resources.files("imagehub.docs").joinpath(f"{slug}.md").read_text(),
                             media_type=MARKDOWN)


def render_model_page(entry: ModelEntry, base: str) -> str:
    card, schema = entry.card, entry.schema.document
    required = set(schema.get("required", []))
    rows = [_field_row(name, spec, name in required)
            for name, spec in sorted(schema["properties"].items(),
                                     key=lambda kv: kv[1].get("x-order", 99))]
    status = "available" if entry.available else f"unavailable: {entry.unavailable_reason}"
    return "\n".join([
        f"# {card.display_name} (`{card.id}`)", "", card.description, "",
        f"Backend: `{card.backend}`; {status}.", "", "## Fields", "",
        "| field | type | default | values | description |", "|---|---|---|---|---|", *rows, "",
        "## Example", "",
        "```bash", f"curl -X POST {base}/api/ai/images/generate \\",
        '  -H "Content-Type: application/json" -H "Authorization: Bearer $IMAGEHUB_API_KEY" \\',
        f"  -d '{{\"model\": \"{card.id}\", \"prompt\": \"a red circle above a blue square\"}}'",
        "```", "",
    ])


def _field_row(name: str, spec: dict[str, Any], required: bool) -> str:
    """One field of the schema as a Markdown table row: its JSON type(s), its default as JSON
    (or "required", or a dash), the values it takes (an enum, a range) and its description."""
    kinds = spec.get("type", "")
    kind = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if "default" in spec:
        default = f"`{json.dumps(spec['default'], ensure_ascii=False)}`"
    else:
        default = "required" if required else "\u2013"
    cells = [f"`{name}`", kind, default, _values(spec), spec.get("description", "")]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _values(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return ", ".join(f"`{json.dumps(v, ensure_ascii=False)}`" for v in spec["enum"])
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    if "maxItems" in spec:  # a string, or a list of up to this many
        return f"one, or a list of up to {spec['maxItems']}"
    return ""


def _cell(text: str) -> str:
    """Text as one Markdown table cell: a pipe escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")
