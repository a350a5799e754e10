"""A model's ``request_schema``: built from what its engine accepts, and the validator of its
requests. What is published is what is enforced."""

from __future__ import annotations

import json
from typing import Any, Mapping

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from imagehub.errors import InvalidParams, clip, quote

NON_BLANK = r"[^\s\u200b-\u200d\u2060\ufeff]"
"""The pattern of text that must not be blank: at least one character that is neither white space
nor a zero-width one (U+200B-U+200D, U+2060, U+FEFF), which ``\\S`` would let through. The
same pattern in a JSON Schema works in Python's ``re`` and in a browser's ``RegExp(p, "u")``."""
MAX_PROMPT_CHARS = 32_000
"""The longest prompt taken: longer than any model here reads (CLIP reads 77 tokens, T5 512;
Gemini's whole request is capped), short enough that a row, a history page and the Workbench
showing it stay small."""
PROMPT_PROPERTY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PROMPT_CHARS,
    "pattern": NON_BLANK,
    "description": "Text description of what you want to generate, or the instruction on how to "
                   "edit the given image.",
    "x-order": 0,
}
BASIC_FIELDS = ("prompt", "aspect_ratio", "resolution", "input_image")


class RequestSchema:
    """One model's schema: ``document`` is published as ``request_schema``, ``validate`` enforces it."""

    def __init__(self, document: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(document)
        self.document = document
        self._validator = Draft202012Validator(document)

    @classmethod
    def build(cls, properties: Mapping[str, dict[str, Any]],
              defaults: Mapping[str, Any] | None = None) -> "RequestSchema":
        """``prompt`` plus the engine's properties; ``defaults`` override the engine's defaults."""
        props: dict[str, Any] = {"prompt": dict(PROMPT_PROPERTY)}
        for name, spec in properties.items():
            props[name] = dict(spec)
            if defaults and name in defaults:
                props[name]["default"] = defaults[name]
        return cls({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props,
            "required": ["prompt"],
            "additionalProperties": False,
            "basic": [f for f in BASIC_FIELDS if f in props],
        })

    @property
    def properties(self) -> dict[str, Any]:
        return self.document["properties"]

    def validate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Raise InvalidParams naming the field and the value of the first problem found; else
        the body as the engines take it (``whole_numbers``)."""
        errors = sorted(self._validator.iter_errors(body), key=_error_order)
        if errors:
            raise InvalidParams(describe(errors[0]))
        return whole_numbers(body, self.properties)

    def with_defaults(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The body with every absent property that has a default filled in."""
        resolved = {k: spec["default"] for k, spec in self.properties.items() if "default" in spec}
        resolved.update(body)
        return resolved


def whole_numbers(body: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``2.0`` as ``2`` in each ``integer`` property: JSON Schema counts a number
    with a zero fraction as an integer, so the schema lets it through, and Python's ``range``,
    torch and SQLite then need it as one."""
    def integer(name: str) -> bool:
        kind = properties.get(name, {}).get("type")
        return kind == "integer" or (isinstance(kind, list) and "integer" in kind)

    return {k: int(v) if isinstance(v, float) and v.is_integer() and integer(k) else v
            for k, v in body.items()}


def _error_order(error: ValidationError) -> tuple[int, str]:
    # unknown fields and missing fields first, then by field name: stable, predictable messages
    rank = {"additionalProperties": 0, "required": 1, "type": 2}.get(str(error.validator), 3)
    return rank, ".".join(map(str, error.absolute_path))


def describe(error: ValidationError) -> str:
    """``field: 'value' <problem>``, the shape API.md section 1 shows."""
    field = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties":
        extras = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        name = clip(".".join([field, extras[0]]) if field else extras[0])
        return f"{name}: unknown field (value {_short(error.instance[extras[0]])}); " \
               f"allowed fields: {sorted(error.schema.get('properties', {}))}"
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        return f"{missing}: required field is missing"
    value = _short(error.instance)
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return f"{field}: {value} is longer than {error.validator_value} characters"
    if error.validator in ("minLength", "pattern") and isinstance(error.instance, str):
        return f"{field}: {value} must not be empty"
    if error.validator == "enum":
        return f"{field}: {value} is not one of {error.validator_value}"
    if error.validator == "type" and error.validator_value == "string" \
            and isinstance(error.instance, list):  # several images where the model takes one
        return f"{field}: {value} is a list of {len(error.instance)}; this model takes one (a string)"
    if error.validator == "type":
        return f"{field}: {value} is not of type {error.validator_value!r}"
    if error.validator in ("minimum", "maximum"):
        word = "less" if error.validator == "minimum" else "greater"
        return f"{field}: {value} is {word} than the {error.validator} {error.validator_value}"
    return f"{field}: {value} is invalid ({clip(error.message, 200)})"


def _short(value: Any) -> str:
    """A value as an error quotes it: ``true``, ``false`` and ``null`` as the client wrote them
    in JSON; anything else as Python shows it (``'text'``, ``[1, 2]``), clipped."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return quote(value)


def json_kind(value: Any) -> str:
    """What a JSON value is, in the words of an error: ``null``, ``a boolean``, ``a number``,
    ``a string``, ``an array``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
