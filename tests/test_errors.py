"""How errors quote the values they refuse: a long string cut, with its true length."""

from __future__ import annotations

from imagehub.errors import clip, quote


def test_a_long_string_is_quoted_up_to_the_limit_with_its_own_length() -> None:
    assert quote("ab") == "'ab'"
    assert quote("x" * 81) == "'" + "x" * 80 + "'... (81 characters)"  # the value's, not repr's
    assert quote("é\n" * 50, limit=4) == "'é\\né\\n'... (100 characters)"
    assert quote([1, 2]) == "[1, 2]"
    assert quote(list(range(100)), limit=10) == clip(repr(list(range(100))), 10)
