"""The OpenAI Images API shape over :meth:`GenerationService.generate` (API.md section 7).

``POST /api/ai/images/generations`` takes ``model``, ``prompt``, ``n``, ``size``,
``response_format``, ``output_format`` (and ``user``, which is only informational), so that the
official ``openai`` SDK with ``base_url="http://host/api/ai"`` generates images. ``size`` becomes
the model's own ``aspect_ratio`` + ``resolution``, the nearest the model can give; every other
field is passed through to the model's ``request_schema`` (``extra_body={"seed": 7}``) and is
validated exactly as on ``/images/generate``.

``POST /api/ai/images/edits`` is ``images.edit``: the same fields as multipart/form-data, with the
image file(s) as ``image`` (or ``image[]``), which become the model's ``input_image``. Form fields
arrive as text; each is read as the type the model's schema (or the generic fields) gives it, so
``n=2`` and ``extra_body={"seed": 7}`` mean what they do in JSON.
"""

from __future__ import annotations

import base64
import io
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imagehub.catalog.schema import json_kind
from imagehub.catalog.sizes import RESOLUTION_BASES, ratio_value
from imagehub.errors import InvalidParams, quote
from imagehub.protocol import GENERIC_FIELDS_SCHEMA, OpenAIImage, OpenAIImagesResponse
from imagehub.services.fetch import default_fetcher
from imagehub.services.generation import GenerationService
from imagehub.services.keys import Principal
from imagehub.services.requests import check_model
from imagehub.storage.images import image_type

OUTPUT_FORMATS = ("png", "jpeg", "webp")
_SIZE = re.compile(r"^(\d+)x(\d+)$")
MAX_SIDE_DIGITS = 5
"""A size's side is at most 99999 pixels (mapped to the model's nearest ratio and resolution)."""
_INFORMATIONAL = ("user",)
"""OpenAI fields that change nothing about the image; accepted and dropped."""


@dataclass
class Upload:
    """One file of a multipart body."""

    filename: str
    data: bytes


@dataclass
class FormBody:
    """A multipart body: its text fields and its files, by name."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)


class OpenAIImagesService:
    """Translates the OpenAI request and response around the hub's own sync generate and edit."""

    def __init__(self, generations: GenerationService) -> None:
        self.generations = generations

    def generate(self, principal: Principal, body: Any,
                 gone: threading.Event | None = None) -> OpenAIImagesResponse:
        if not isinstance(body, dict):
            raise InvalidParams(f"body: expected a JSON object, got {json_kind(body)}")
        return self._run(principal, body, edit=False, gone=gone)

    def edit(self, principal: Principal, form: FormBody,
             gone: threading.Event | None = None) -> OpenAIImagesResponse:
        """``images.edit``: the form's fields, typed as the model reads them, and its image files
        as the model's ``input_image``."""
        model = check_model(form.fields)
        images = _input_images(form)
        body = self._typed(model, {k: v for k, v in form.fields.items() if k != "image"})
        body["input_image"] = images[0] if len(images) == 1 else images
        try:
            return self._run(principal, body, edit=True, gone=gone)
        except InvalidParams as exc:  # the client sent 'image': name that, not the hub's field
            if not exc.detail.startswith("input_image"):
                raise
            raise InvalidParams(f"image{exc.detail.removeprefix('input_image')} (the 'image' "
                                "files are the model's input_image)") from None

    def _typed(self, model: str, fields: dict[str, str]) -> dict[str, Any]:
        """Form text as the types the model's schema and the generic fields declare; a value that
        does not read as its type stays text, for the validator to name."""
        specs = {**GENERIC_FIELDS_SCHEMA["properties"],
                 **self.generations.deps.catalog.get(model).schema.properties}
        return {name: _as_declared(value, specs.get(name, {})) for name, value in fields.items()}

    def _run(self, principal: Principal, body: dict[str, Any], *, edit: bool,
             gone: threading.Event | None) -> OpenAIImagesResponse:
        # 1. the model first (size is read against its fields), then split the OpenAI-only
        #    fields from the ones the hub knows
        model = check_model(body)
        hub_body = {k: v for k, v in body.items() if k not in ("size", "output_format", *_INFORMATIONAL)}
        output_format = _output_format(body.get("output_format", "png"))
        hub_body.setdefault("response_format", "url")
        if output_format != "png" and hub_body["response_format"] == "url":
            raise InvalidParams(f"output_format: {output_format!r} needs response_format "
                                "'b64_json'; image URLs always serve PNG")
        # 2. size -> the model's aspect_ratio + resolution
        size = body.get("size")
        if size is not None and size != "auto":
            hub_body.update(self._size_fields(hub_body, model, size))
        # 3. run, then answer in the OpenAI shape
        result = self.generations.generate(principal, hub_body, edit=edit, gone=gone)
        data = [OpenAIImage(url=image.url) if image.url is not None
                else OpenAIImage(b64_json=_reencode(image.b64_json or "", output_format))
                for image in result.images]
        first = result.images[0] if result.images else None
        return OpenAIImagesResponse(created=result.created, data=data, output_format=output_format,
                                    size=f"{first.width}x{first.height}" if first else None)

    def _size_fields(self, body: dict[str, Any], model: str, size: Any) -> dict[str, str]:
        match = _SIZE.match(size) if isinstance(size, str) else None
        if match is not None and max(len(match[1]), len(match[2])) > MAX_SIDE_DIGITS:
            raise InvalidParams(f"size: {quote(size)} has a side over 99999 pixels; the "
                                "model's largest size is its 4K class (see its resolution field)")
        if match is None or 0 in (int(match[1]), int(match[2])):
            raise InvalidParams(f"size: {size!r} is not 'auto' or '<width>x<height>' "
                                "(e.g. '1024x1024')")
        for name in ("aspect_ratio", "resolution"):
            if name in body:
                raise InvalidParams(f"{name}: {body[name]!r} conflicts with size {size!r}; "
                                    "send one or the other")
        props = self.generations.deps.catalog.get(model).schema.properties
        if "aspect_ratio" not in props or "resolution" not in props:
            raise InvalidParams(f"size: {size!r} is not supported by model {model!r}, which has "
                                "no aspect_ratio/resolution fields; send 'auto' or leave it out")
        width, height = int(match[1]), int(match[2])
        return {"aspect_ratio": _nearest_ratio(width, height, props["aspect_ratio"].get("enum", [])),
                "resolution": _nearest_resolution(width, height, props["resolution"].get("enum", []))}


def _input_images(form: FormBody) -> list[str]:
    """The form's ``image`` files as data URIs, then an ``image`` text field (a URL) as sent."""
    others = sorted(set(form.files) - {"image"})
    if "mask" in others:
        mask = form.files["mask"][0]
        raise InvalidParams(f"mask: {mask.filename!r} ({len(mask.data)} bytes) is not supported: "
                            "imagehub's edit models change the image as the prompt says, with no "
                            "mask; leave it out")
    if others:
        raise InvalidParams(f"{others[0]}: unknown file field ({form.files[others[0]][0].filename!r}); "
                            "the image(s) to edit go in 'image'")
    uris = [_data_uri(upload) for upload in form.files.get("image", [])]
    if "image" in form.fields:
        uris.append(form.fields["image"])
    if not uris:
        raise InvalidParams("image: required file is missing (the image to edit)")
    return uris


def _data_uri(upload: Upload) -> str:
    kind = image_type("image", f"{upload.filename!r} ({len(upload.data)} bytes)", upload.data,
                      default_fetcher().max_pixels)
    return f"data:{kind};base64,{base64.b64encode(upload.data).decode()}"


def _as_declared(value: str, spec: dict[str, Any]) -> Any:
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if "string" in types:
        return value
    if "integer" in types and re.fullmatch(r"[+-]?\d{1,30}", value.strip()):
        return int(value)
    if "number" in types:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if "boolean" in types and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _output_format(value: Any) -> str:
    if value not in OUTPUT_FORMATS:
        raise InvalidParams(f"output_format: {value!r} is not one of {list(OUTPUT_FORMATS)}")
    return str(value)


def _nearest_ratio(width: int, height: int, listed: list[str]) -> str:
    """The model's listed ratio closest to ``width:height`` in log space."""
    target = math.log(width / height)
    ratios = [r for r in listed if r != "auto"] or ["1:1"]
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - target))


def _nearest_resolution(width: int, height: int, listed: list[str]) -> str:
    """The model's listed resolution whose base is closest to √(width·height) in log space."""
    target = math.log(math.sqrt(width * height))
    known = [r for r in listed if r in RESOLUTION_BASES] or ["1K"]
    return min(known, key=lambda r: abs(math.log(RESOLUTION_BASES[r]) - target))


def _reencode(png_b64: str, output_format: str) -> str:
    if output_format == "png":
        return png_b64
    image = Image.open(io.BytesIO(base64.b64decode(png_b64)))
    out = io.BytesIO()
    image.convert("RGB").save(out, format=output_format.upper())
    return base64.b64encode(out.getvalue()).decode()
