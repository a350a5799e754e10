"""Fixtures for imagehub-tiny: the shipped engine, loaded once per session."""

from __future__ import annotations

import pytest

from imagehub.engines.builtin.engine import BuiltinEngine


@pytest.fixture(scope="session")
def engine() -> BuiltinEngine:
    shipped = BuiltinEngine()
    shipped.load()
    return shipped
