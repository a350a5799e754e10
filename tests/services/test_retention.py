"""``services.retention`` on real SQLite and local files: what a sweep deletes and what it keeps.
A sweep is told the time, so a test need not wait days; the server's own sweeps are in
``tests/e2e/test_retention.py``."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from imagehub.db.records import GenerationRecord, IdempotencyKeyRecord
from imagehub.db.session import make_engine, make_sessionmaker, migrate
from imagehub.jobs.queue import SqlQueue
from imagehub.services import inputs
from imagehub.services.retention import INPUT_GRACE_SECONDS, Retention
from imagehub.storage.local import LocalStorage

DAY = 86400


@pytest.fixture
def queue(tmp_path: Path) -> SqlQueue:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    return SqlQueue(make_sessionmaker(engine))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def row(status: str, ended: int | None, idempotency_key: str | None = None,
        input_image: str | list[str] | None = None) -> GenerationRecord:
    now = time.time_ns()
    resolved: dict[str, object] = {"prompt": "p"}
    if input_image:
        resolved["input_image"] = input_image
    return GenerationRecord(
        id=str(uuid.uuid4()), namespace="team", key_id=None, model_name="m", media_type="image",
        source="queue", prompt="p", params={"prompt": "p"}, resolved=resolved, provenance={},
        status=status, num_images=1, images=[], attempts=0, idempotency_key=idempotency_key,
        enqueued_at=now // 10**9, order_key=now, completed_at=ended,
    )


def test_ended_generations_past_the_retention_go_with_their_images(
        queue: SqlQueue, storage: LocalStorage) -> None:
    now = int(time.time())
    old = [row("succeeded", now - 8 * DAY), row("failed", now - 9 * DAY),
           row("cancelled", now - 30 * DAY)]
    young = row("succeeded", now - 6 * DAY)
    open_rows = [row("queued", None), row("processing", None)]
    queue.add([*old, young, *open_rows])
    for record in [*old, young]:
        storage.put(f"{record.id}/0.png", b"png", "image/png")

    swept = Retention(queue, storage, days=7).sweep(now)

    assert swept.generations == 3
    assert all(queue.get(r.id) is None and storage.get(f"{r.id}/0.png") is None for r in old)
    assert queue.get(young.id) is not None and storage.get(f"{young.id}/0.png") == b"png"
    assert all(queue.get(r.id) is not None for r in open_rows)


def test_no_retention_keeps_every_generation(queue: SqlQueue, storage: LocalStorage) -> None:
    ancient = row("succeeded", int(time.time()) - 3650 * DAY)
    queue.add([ancient])
    assert Retention(queue, storage, days=0).sweep().generations == 0
    assert queue.get(ancient.id) is not None


def test_more_generations_than_one_batch_all_go(queue: SqlQueue, storage: LocalStorage) -> None:
    now = int(time.time())
    queue.add([row("succeeded", now - 2 * DAY) for _ in range(1203)])
    assert Retention(queue, storage, days=1).sweep(now).generations == 1203


def test_an_idempotency_key_goes_with_the_last_of_its_generations(
        queue: SqlQueue, storage: LocalStorage) -> None:
    """Once its rows are gone, the key can be used again (a retry of the old request would
    otherwise find the key taken and no rows to answer with)."""
    now = int(time.time())
    assert queue.add_under_key("team", "k-old", [row("queued", None, "k-old")])
    assert queue.add_under_key("team", "k-kept", [row("queued", None, "k-kept")])
    with queue._write() as session:  # the key rows and their generations, as days old
        session.execute(GenerationRecord.__table__.update()
                        .values(status="succeeded", completed_at=now - 3 * DAY))
        session.execute(IdempotencyKeyRecord.__table__.update().values(created_at=now - 3 * DAY))
    queue.add([row("succeeded", now, "k-kept")])  # a young generation still under this key

    assert Retention(queue, storage, days=1).sweep(now).generations == 2

    assert queue.add_under_key("team", "k-old", [row("queued", None, "k-old")])  # free again
    assert not queue.add_under_key("team", "k-kept", [row("queued", None, "k-kept")])


def _aged(storage: LocalStorage, key: str, seconds: float) -> None:
    storage.put(key, b"image", "image/png")
    then = time.time() - seconds
    os.utime(storage.root / key, (then, then))


def test_input_images_go_once_no_open_generation_needs_them(
        queue: SqlQueue, storage: LocalStorage) -> None:
    grace = INPUT_GRACE_SECONDS
    _aged(storage, "inputs/unused", grace + 60)        # ended generations' only: deleted
    _aged(storage, "inputs/queued", grace + 60)        # a queued generation's: kept
    _aged(storage, "inputs/second", grace + 60)        # a processing one's, second of a list: kept
    _aged(storage, "inputs/fresh", grace - 60)         # stored just now for a request: kept
    _aged(storage, "inputs/.half.tmp", grace + 60)     # a write a crash cut short: deleted
    queue.add([row("succeeded", int(time.time()), input_image=f"{inputs.REF}unused"),
               row("queued", None, input_image=f"{inputs.REF}queued"),
               row("processing", None, input_image=[f"{inputs.REF}fresh",
                                                    f"{inputs.REF}second"])])

    swept = Retention(queue, storage, days=0).sweep()

    assert swept.input_images == 2
    left = sorted(key for key, _ in storage.listed("inputs/"))
    assert left == ["inputs/fresh", "inputs/queued", "inputs/second"]


def test_an_input_image_written_again_is_young_again(queue: SqlQueue, storage: LocalStorage) -> None:
    """The same image sent again is stored under the same name: the new request's copy is not
    taken for the old one's leftover."""
    _aged(storage, "inputs/same", INPUT_GRACE_SECONDS + 60)
    storage.put("inputs/same", b"image", "image/png")
    assert Retention(queue, storage, days=0).sweep().input_images == 0
    assert storage.get("inputs/same") == b"image"
