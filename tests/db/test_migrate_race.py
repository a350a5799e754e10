"""Two first starts at once on a new data dir: both migrate, one at a time, and neither fails."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path


def _migrate(folder: str, answers: mp.Queue) -> None:  # type: ignore[type-arg]
    from imagehub.db.session import make_engine, migrate

    try:
        migrate(make_engine(f"sqlite:///{folder}/imagehub.db"))
        answers.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        answers.put(f"{type(exc).__name__}: {exc}"[:200])


def test_processes_migrating_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    context = mp.get_context("spawn")
    for trial in range(8):  # without the lock, about one trial in eight failed
        answers = context.Queue()
        racers = [context.Process(target=_migrate, args=(str(tmp_path / str(trial)), answers))
                  for _ in range(3)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(120)
        assert sorted(answers.get(timeout=5) for _ in racers) == ["ok"] * 3
