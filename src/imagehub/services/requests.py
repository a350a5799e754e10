"""Turning a request body into something to run: generic fields, model fields, sizes, seed."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from PIL import Image

from imagehub.catalog.catalog import Catalog, ModelEntry
from imagehub.catalog.schema import describe, json_kind, whole_numbers
from imagehub.catalog.sizes import nearest_ratio, output_size
from imagehub.engines.base import ChecksParams, EngineRequest
from imagehub.errors import Forbidden, InvalidParams, ModelUnavailable, quote
from imagehub.protocol import GENERIC_FIELDS_SCHEMA
from imagehub.services.fetch import check_image_ref, is_url, load_image
from imagehub.services.keys import Principal

_GENERIC = Draft202012Validator(GENERIC_FIELDS_SCHEMA)
_GENERIC_NAMES = set(GENERIC_FIELDS_SCHEMA["properties"])
_MODEL = Draft202012Validator({"type": "object", "required": ["model"],
                               "properties": {"model": GENERIC_FIELDS_SCHEMA["properties"]["model"]}})
SEED_MAX: int = GENERIC_FIELDS_SCHEMA["properties"]["seed"]["maximum"]
"""The largest seed a request may carry; derived seeds wrap past it (see :func:`seeded`)."""


@dataclass
class ParsedRequest:
    """A validated request: which model, its own fields as carried, and the generic options."""

    entry: ModelEntry
    params: dict[str, Any]
    """The model fields exactly as carried (echoed on rows)."""
    resolved: dict[str, Any]
    """Model fields with defaults filled, plus ``seed``, ``width``, ``height``."""
    count: int
    response_format: str
    namespace: str
    carried: dict[str, Any]
    """The generic fields as carried, but ``model`` and ``seed`` (echoed on rows)."""


def parse(catalog: Catalog, principal: Principal, body: Any, *, count_field: str,
          require_image: bool = False) -> ParsedRequest:
    """Validate ``body`` against the generic fields and the model's request_schema."""
    if not isinstance(body, dict):
        raise InvalidParams(f"body: expected a JSON object, got {json_kind(body)}")
    body = dict(body)
    if require_image and "image" in body and "input_image" not in body:
        body["input_image"] = body.pop("image")
    entry = catalog.get(_check_generic(body, count_field))
    if require_image:
        if entry.fields_known and "input_image" not in entry.schema.properties:
            raise InvalidParams(f"model: {entry.id!r} takes no input image (a text-to-image "
                                "model); POST /api/ai/images/generate runs it")
        _require_image(body)  # every edit needs one, whatever the model
    if not entry.fields_known:  # before its fields: a broken card's schema says little (503 says why)
        raise ModelUnavailable(str(entry.unavailable_reason))
    schema_names = set(entry.schema.properties)
    generic = whole_numbers({k: body[k] for k in body if k in _GENERIC_NAMES and k not in schema_names},
                            GENERIC_FIELDS_SCHEMA["properties"])
    params = _one_image_unlisted(entry, {k: v for k, v in body.items() if k not in generic})
    _refuse_other_count_field(generic, count_field)
    params = entry.schema.validate(params)
    namespace = _namespace(principal, generic.get("target_namespace"))
    inputs = as_list(params.get("input_image"))
    for uri in inputs:  # bad URLs, formats and sizes now (400, 413): headers only, nothing decoded
        check_image_ref("input_image", uri, decode=False)
    if not entry.available:  # a remote model without a provider: its fields are known, and 400
        raise ModelUnavailable(str(entry.unavailable_reason))  # for a bad one comes first
    for uri in inputs:  # a model that will run: data URIs decode (a truncated one is 400 now)
        if not is_url(uri):
            check_image_ref("input_image", uri)
    resolved = entry.schema.with_defaults(params)
    if isinstance(entry.engine, ChecksParams):  # rules across fields, before anything is queued
        entry.engine.check_params(resolved)
    resolved["seed"] = generic.get("seed", params.get("seed"))
    return ParsedRequest(
        entry=entry, params=params, resolved=resolved, count=generic.get(count_field, 1),
        response_format=generic.get("response_format", "url"), namespace=namespace,
        carried={k: v for k, v in generic.items() if k not in ("model", "seed")},
    )


def check_model(body: dict[str, Any]) -> str:
    """The body's ``model``, or InvalidParams naming it when it is missing or not a model id."""
    errors = list(_MODEL.iter_errors(body))
    if errors:
        raise InvalidParams(describe(errors[0]))
    return str(body["model"])


def _require_image(params: dict[str, Any]) -> None:
    """An edit needs at least one image: refuse a missing ``input_image`` and an empty list."""
    if "input_image" not in params:
        raise InvalidParams("input_image: required field is missing (the image to edit)")
    if not as_list(params["input_image"]):
        raise InvalidParams(f"input_image: {params['input_image']!r} holds no image; "
                            "an edit needs at least one")


def _check_generic(body: dict[str, Any], count_field: str) -> str:
    # the other endpoint's count field is not checked as a count here: unless the model takes a
    # field of that name, it is refused as not this endpoint's ("n": 5 on the queue is not "at
    # most 4" but "takes 'num_generations'")
    other = _other_count_field(count_field)
    subset = {k: v for k, v in body.items() if k in _GENERIC_NAMES and k != other}
    errors = sorted(_GENERIC.iter_errors(subset), key=lambda e: str(e.validator) != "required")
    if errors:
        raise InvalidParams(describe(errors[0]))
    return str(body["model"])


def _other_count_field(count_field: str) -> str:
    return "num_generations" if count_field == "n" else "n"


def _refuse_other_count_field(generic: dict[str, Any], count_field: str) -> None:
    other = _other_count_field(count_field)
    if other in generic:
        raise InvalidParams(f"{other}: unknown field here (value {quote(generic[other])}); "
                            f"this endpoint takes {count_field!r}")
    if "response_format" in generic and count_field == "num_generations":
        raise InvalidParams(f"response_format: unknown field for the queue "
                            f"(value {generic['response_format']!r}); queued images come back as URLs")


def _namespace(principal: Principal, target: str | None) -> str:
    if target is None:
        return principal.namespace
    if target not in principal.namespaces:
        raise Forbidden(f"target_namespace: {target!r} is not a namespace this key belongs to "
                        f"({list(principal.namespaces)})")
    return target


def _one_image_unlisted(entry: ModelEntry, params: dict[str, Any]) -> dict[str, Any]:
    """``input_image: [x]`` as ``x`` for a model that takes one image: API.md types the field
    "string or array of strings", and a client written for a model that takes several (as
    nano-banana-2 does) sends a list of one. Two or more are still refused, naming the count."""
    value = params.get("input_image")
    if entry.schema.properties.get("input_image", {}).get("type") == "string" \
            and isinstance(value, list) and len(value) == 1:
        return {**params, "input_image": value[0]}
    return params


def seeded(resolved: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The resolved params of the ``index``-th generation of a request.

    An explicit seed counts up, ``seed + index``, wrapping modulo ``SEED_MAX + 1`` (so
    ``SEED_MAX`` is followed by 0): every stored seed is one the API accepts when sent back.
    Without a seed, each generation gets a random one.
    """
    out = dict(resolved)
    seed = resolved.get("seed")
    out["seed"] = (seed + index) % (SEED_MAX + 1) if seed is not None else secrets.randbelow(2**31)
    return out


def engine_request(resolved: Mapping[str, Any], num_images: int,
                   load: Callable[[str, str], Image.Image] = load_image) -> EngineRequest:
    """The engine's view of a stored, resolved generation; ``load`` reads each input image
    (``services.inputs.load`` for a row's stored ones)."""
    images = [load("input_image", uri) for uri in as_list(resolved.get("input_image"))]
    ratio = resolved.get("aspect_ratio", "1:1")
    if ratio == "auto" and images:
        ratio = nearest_ratio(*images[0].size)
    width, height = output_size(resolved.get("resolution", "1K"), ratio)
    return EngineRequest(
        prompt=resolved["prompt"], width=width, height=height, seed=int(resolved["seed"]),
        num_images=num_images, negative_prompt=resolved.get("negative_prompt"),
        num_inference_steps=resolved.get("num_inference_steps"),
        guidance_scale=resolved.get("guidance_scale"), input_images=images, params=dict(resolved),
    )


def as_list(value: Any) -> list[str]:
    """An ``input_image`` value (one string or several) as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
