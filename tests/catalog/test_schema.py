"""RequestSchema: published == enforced; messages name the field and the value."""

from __future__ import annotations

import pytest

from imagehub.catalog.schema import RequestSchema, whole_numbers
from imagehub.catalog.sizes import ASPECT_RATIOS, nearest_ratio, output_size
from imagehub.errors import InvalidParams

SCHEMA = RequestSchema.build({
    "aspect_ratio": {"type": "string", "enum": ASPECT_RATIOS, "default": "1:1"},
    "steps": {"type": "integer", "minimum": 1, "maximum": 10, "default": 4},
}, defaults={"steps": 2})


@pytest.mark.parametrize("body,message", [
    ({"prompt": "x", "bogus": 1}, "bogus: unknown field (value 1)"),
    ({}, "prompt: required field is missing"),
    ({"prompt": ""}, "prompt: '' must not be empty"),
    ({"prompt": "\u200b \u200c"}, "prompt: '\\u200b \\u200c' must not be empty"),
    ({"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio: '7:3' is not one of"),
    ({"prompt": "x", "steps": 11}, "steps: 11 is greater than the maximum 10"),
    ({"prompt": "x", "steps": "2"}, "steps: '2' is not of type 'integer'"),
    ({"prompt": ["a", "b"]}, "prompt: ['a', 'b'] is a list of 2; this model takes one (a string)"),
])
def test_messages_name_field_and_value(body: dict, message: str) -> None:
    with pytest.raises(InvalidParams) as err:
        SCHEMA.validate(body)
    assert message in err.value.detail


def test_defaults_from_card_override_engine_and_fill_in() -> None:
    assert SCHEMA.document["properties"]["steps"]["default"] == 2
    assert SCHEMA.with_defaults({"prompt": "x"}) == {"prompt": "x", "aspect_ratio": "1:1", "steps": 2}
    assert SCHEMA.document["additionalProperties"] is False
    assert SCHEMA.document["basic"] == ["prompt", "aspect_ratio"]


@pytest.mark.parametrize("resolution,ratio,size", [
    ("1K", "1:1", (1024, 1024)), ("1K", "16:9", (1360, 768)), ("2K", "21:9", (3136, 1344)),
    ("512", "auto", (512, 512)), ("4K", "1:8", (1456, 11584)),
])
def test_sizes_follow_api_section_6(resolution: str, ratio: str, size: tuple[int, int]) -> None:
    assert output_size(resolution, ratio) == size


def test_nearest_ratio_for_auto_edits() -> None:
    assert nearest_ratio(1920, 1080) == "16:9" and nearest_ratio(1000, 1010) == "1:1"


def test_whole_number_floats_pass_as_ints_and_other_numbers_stay() -> None:
    """JSON Schema counts 2.0 as an integer: validation lets it through and hands back 2."""
    body = SCHEMA.validate({"prompt": "x", "steps": 3.0})
    assert body == {"prompt": "x", "steps": 3} and isinstance(body["steps"], int)
    with pytest.raises(InvalidParams, match="steps: 2.5"):
        SCHEMA.validate({"prompt": "x", "steps": 2.5})
    assert whole_numbers({"a": 2.0, "b": 2.0, "c": "2"},
                         {"a": {"type": ["integer", "null"]}, "b": {"type": "number"}}) == \
        {"a": 2, "b": 2.0, "c": "2"}
