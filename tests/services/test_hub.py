"""The hub's own decisions: how many workers it runs."""

from __future__ import annotations

from types import SimpleNamespace

from imagehub.config import Settings
from imagehub.services.hub import worker_slots


def catalog(*replicas: int | None) -> SimpleNamespace:
    """A catalog of entries whose engines have these ``replicas`` (None: an engine without)."""
    engines = [SimpleNamespace() if n is None else SimpleNamespace(replicas=n) for n in replicas]
    return SimpleNamespace(all=lambda: [SimpleNamespace(engine=e) for e in engines])


def test_two_workers_per_copy_of_the_model_with_the_most_copies_unless_more_are_set() -> None:
    assert worker_slots(Settings(worker_concurrency=1), catalog(None, 1)) == 1
    assert worker_slots(Settings(worker_concurrency=1), catalog(None, 2, 3)) == 6
    assert worker_slots(Settings(worker_concurrency=8), catalog(2)) == 8
    assert worker_slots(Settings(worker_concurrency=3), catalog()) == 3
