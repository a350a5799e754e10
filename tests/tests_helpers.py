"""Helpers shared by test modules (not fixtures)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for_status(api: httpx.Client, generation_id: str, statuses: set[str],
                    timeout: float = 120) -> dict[str, Any]:
    """Poll ``GET /api/ai/queue/{id}`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = api.get(f"/api/ai/queue/{generation_id}").json()
        if row["status"] in statuses:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{generation_id} did not reach {statuses}: last {row}")


def raised(fn: Callable[[], object]) -> BaseException | None:
    """What ``fn()`` raised, or None (for a thread's outcome to assert on)."""
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned for the assertion
        return exc
    return None
