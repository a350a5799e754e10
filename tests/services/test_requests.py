"""``services.requests.seeded``: the seeds of a request's generations stay inside the range the
API accepts."""

from __future__ import annotations

from imagehub.protocol import GENERIC_FIELDS_SCHEMA
from imagehub.services.requests import SEED_MAX, seeded


def test_seed_max_is_the_schema_maximum() -> None:
    assert SEED_MAX == GENERIC_FIELDS_SCHEMA["properties"]["seed"]["maximum"] == 2**63 - 1


def test_explicit_seed_counts_up_and_wraps_past_the_maximum() -> None:
    assert [seeded({"seed": 5}, i)["seed"] for i in range(3)] == [5, 6, 7]
    assert [seeded({"seed": SEED_MAX - 1}, i)["seed"] for i in range(4)] == [SEED_MAX - 1, SEED_MAX, 0, 1]


def test_without_a_seed_each_generation_gets_a_random_one_in_range() -> None:
    seeds = [seeded({"seed": None, "prompt": "x"}, i)["seed"] for i in range(4)]
    assert all(0 <= seed <= SEED_MAX for seed in seeds)

